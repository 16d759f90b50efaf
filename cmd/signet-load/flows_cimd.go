package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
)

const (
	wlDynAuthorize = "authorize with session → code (dynamic public client, consent given)"
	wlDynRedeem    = "code redemption (dynamic public client, PKCE, ES256 access token)"
	docPath        = "/client.json"
)

// docServer serves the tool's client ID metadata document over https on
// loopback with httptest's certificate, written to caFile for Signet's
// outbound.ca_file (as interop/mcp does), and counts every request.
type docServer struct {
	srv     *httptest.Server
	url     string // the document's URL: its client_id
	caFile  string
	fetches atomic.Int64
}

func startDocServer(dir string) (*docServer, error) {
	d := &docServer{}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fetches.Add(1)
		if r.URL.Path != docPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// An hour, outbound.max_cache's default: no refetch within a run.
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(dynamicClientMetadata(d.url))
	}))
	d.url = d.srv.URL + docPath
	d.caFile = filepath.Join(dir, "docs-ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.srv.Certificate().Raw})
	if err := os.WriteFile(d.caFile, ca, 0o600); err != nil {
		d.srv.Close()
		return nil, err
	}
	return d, nil
}

// dynClient is a public client the rows authorize and redeem for.
type dynClient struct {
	id, verifier string
}

// cimdScenario compares a client known by its metadata document (cache
// warm) with a registered one: authorization with alice's SSO session
// (consent given once before), then the redemption of those codes.
func cimdScenario(ctx context.Context, fl *flowLab) ([]workload, error) {
	reg, err := register(ctx, fl.c, fl.d.urls[0], dynamicClientMetadata(""))
	if err != nil {
		return nil, err
	}
	kinds := map[*target]*dynClient{}
	var ts []*target
	for _, k := range []struct{ name, id string }{{"registered (RFC 7591)", reg}, {"metadata document (https client_id, cached)", fl.docs.url}} {
		var v [32]byte
		_, _ = rand.Read(v[:])
		dc := &dynClient{id: k.id, verifier: base64.RawURLEncoding.EncodeToString(v[:])}
		// Warm-up: the consent, a code and its redemption (the document's
		// one fetch happens here).
		if err := dc.consent(ctx, fl.d); err != nil {
			return nil, fmt.Errorf("%s: %w", k.name, err)
		}
		code, err := dc.code(ctx, fl.d, fl.d.urls[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.name, err)
		}
		if _, err := want200(dc.redeem(ctx, fl.c, fl.d.urls[0], code)); err != nil {
			return nil, fmt.Errorf("%s: redeem: %w", k.name, err)
		}
		t := fl.target(k.name)
		kinds[t] = dc
		ts = append(ts, t)
		fl.benches[key{wlDynAuthorize, t.name}] = "none (`BenchmarkCodeRedemption` issues its codes in the store)"
		fl.benches[key{wlDynRedeem, t.name}] = "registration `BenchmarkCodeRedemption/" + map[bool]string{true: "registered", false: "metadata_document"}[k.id == reg] + "`"
	}
	return []workload{
		{name: wlDynAuthorize, targets: ts, prepare: func(_ context.Context, t *target, _ int) error {
			t.dropCodes()
			return nil
		}, op: func(t *target) func(ctx context.Context, w int) error {
			return func(ctx context.Context, w int) error {
				c, err := kinds[t].code(ctx, t.dep, t.base(w))
				if err != nil {
					return err
				}
				t.putCode(c)
				return nil
			}
		}},
		{name: wlDynRedeem, targets: ts, op: func(t *target) func(ctx context.Context, w int) error {
			return func(ctx context.Context, w int) error {
				c, ok := t.takeCode()
				if !ok {
					return errNoWork
				}
				a, err := want200(kinds[t].redeem(ctx, t.c, t.base(w), c))
				if err == nil && a.str("access_token") == "" {
					err = fmt.Errorf("no access token in %s", a.body)
				}
				return err
			}
		}},
	}, nil
}

func (dc *dynClient) authorizeURL(base string) string {
	sum := sha256.Sum256([]byte(dc.verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {dc.id}, "redirect_uri": {redirectURI}, "scope": {flowScope},
		"state": {"load"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	return base + "/oauth2/authorize?" + q.Encode()
}

// consent allows the client on the consent page with alice's session.
func (dc *dynClient) consent(ctx context.Context, d *deployment) error {
	a, err := want200(do(ctx, d.browser, http.MethodGet, dc.authorizeURL(d.urls[0]), nil, "", ""))
	if err != nil {
		return fmt.Errorf("consent page: %w", err)
	}
	action, f, err := formOf(a)
	if err != nil {
		return fmt.Errorf("consent page: %w", err)
	}
	f.Set("decision", "allow")
	a, err = do(ctx, d.browser, http.MethodPost, d.urls[0]+action, f, "", "")
	if err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	_, err = codeOf(a)
	return err
}

// code asks base for a code with alice's session.
func (dc *dynClient) code(ctx context.Context, d *deployment, base string) (string, error) {
	a, err := do(ctx, d.browser, http.MethodGet, dc.authorizeURL(base), nil, "", "")
	if err != nil {
		return "", err
	}
	return codeOf(a)
}

func (dc *dynClient) redeem(ctx context.Context, c *http.Client, base, code string) (answer, error) {
	return do(ctx, c, http.MethodPost, base+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {dc.verifier}, "client_id": {dc.id}}, "", "")
}

// formOf returns the action and the hidden fields of a page's first form.
func formOf(a answer) (string, url.Values, error) {
	m := actionRE.FindSubmatch(a.body)
	if m == nil {
		return "", nil, fmt.Errorf("no form in the page (status %d): %.300s", a.status, a.body)
	}
	f := url.Values{}
	for _, h := range hiddenRE.FindAllSubmatch(a.body, -1) {
		f.Set(string(h[1]), html.UnescapeString(string(h[2])))
	}
	return html.UnescapeString(string(m[1])), f, nil
}
