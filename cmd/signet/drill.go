package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/jwks"
)

// drillAudience is the audience of the drill's own clients.
const drillAudience = "signet-drill"

// drillVerifier is one way real services verify tokens.
type drillVerifier struct {
	name   string
	verify func(ctx context.Context, token string) error
	close  func()
}

// drillResult is what one verifier saw during the drill.
type drillResult struct {
	Verifier string `json:"verifier"`
	Checked  int    `json:"checked"`
	// Rejected counts valid tokens (signed by a live key, unexpired) the
	// verifier refused: each is a request a real service would have failed.
	Rejected       int       `json:"rejected"`
	FirstRejection time.Time `json:"first_rejection,omitzero"`
	LastRejection  time.Time `json:"last_rejection,omitzero"`
	FirstError     string    `json:"first_error,omitempty"`
	// RevokedKeyRejectedAfter is how long after the emergency revocation the
	// verifier started refusing a token of the revoked key; empty when it
	// still accepted it at the end of the drill.
	RevokedKeyRejectedAfter string `json:"revoked_key_rejected_after,omitempty"`
}

// drillReport is the outcome, printed as a table or JSON.
type drillReport struct {
	Issuer     string        `json:"issuer"`
	Duration   string        `json:"duration"`
	Tokens     int           `json:"tokens"`
	Rotated    []string      `json:"rotated_to"`
	RevokedKID string        `json:"revoked_kid,omitempty"`
	Results    []drillResult `json:"results"`
}

// runDrill is `signet drill --issuer URL`: the rotation drill.
func runDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drill", stderr)
	issuer := fs.String("issuer", "", "issuer URL of the running signet (required)")
	adminURL := fs.String("admin-url", "", "admin API URL when http.admin_addr is set (default: the issuer)")
	duration := fs.Duration("duration", 30*time.Second, "how long to issue and verify tokens; the rotation happens at a quarter of it")
	force := fs.Bool("force", false, "rotate even if the pending key was published for less than jwks.max_age (expect rejections then)")
	revoke := fs.Bool("revoke-retired", false, "after the rotation, revoke the key it retired (an emergency revocation)")
	workers := fs.Int("workers", 4, "concurrent token requests")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *issuer == "" || fs.NArg() != 0 {
		return usageError{"usage: signet drill --issuer URL [--duration 30s] [--force] [--revoke-retired] [--json] (admin credentials in SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET)"}
	}
	if *duration < 4*time.Second || *workers < 1 {
		return usageError{"--duration must be at least 4s and --workers at least 1"}
	}
	if *adminURL == "" {
		*adminURL = *issuer
	}
	d := &drill{issuer: strings.TrimSuffix(*issuer, "/"), duration: *duration, force: *force, revoke: *revoke, workers: *workers, log: stderr}
	report, err := d.run(ctx, *adminURL)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		printDrill(stdout, report)
	}
	var failed []string
	for _, r := range report.Results {
		if r.Rejected > 0 {
			failed = append(failed, r.Verifier)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("valid tokens were rejected by: %s", strings.Join(failed, ", "))
	}
	return nil
}

type drill struct {
	issuer   string
	duration time.Duration
	force    bool
	revoke   bool
	workers  int
	log      io.Writer
	http     *http.Client

	mu        sync.Mutex
	results   []drillResult
	tokens    int
	sample    map[string]string // kid -> a token it signed
	revoked   string            // kid, once revoked
	revokedAt time.Time
}

func (d *drill) logf(format string, args ...any) {
	fmt.Fprintf(d.log, "drill: "+format+"\n", args...)
}

func (d *drill) run(ctx context.Context, adminURL string) (*drillReport, error) {
	d.http = &http.Client{Timeout: 10 * time.Second}
	ac, err := newAdminClient(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := d.getJSON(ctx, d.issuer+"/.well-known/oauth-authorization-server", &meta); err != nil {
		return nil, err
	}
	if meta.Issuer != d.issuer {
		return nil, fmt.Errorf("the metadata at %s names issuer %q: pass exactly that as --issuer", d.issuer, meta.Issuer)
	}
	keyList, err := d.keys(ctx, ac)
	if err != nil {
		return nil, err
	}
	var algs []string
	for _, k := range keyList {
		if k.State == "active" {
			algs = append(algs, k.Alg)
		}
	}
	slices.Sort(algs)

	// One client per live algorithm, removed at the end.
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	var sources []clientcredentials.Config
	for _, alg := range algs {
		id := "signet-drill-" + strings.ToLower(alg) + "-" + base64.RawURLEncoding.EncodeToString(suffix[:])
		var created authority.ClientWithSecret
		spec := authority.Client{ID: id, GrantTypes: []string{authority.GrantClientCredentials}, Audiences: []string{drillAudience}, SigningAlg: alg}
		if err := ac.do(ctx, http.MethodPost, "/admin/clients", spec, &created); err != nil {
			return nil, fmt.Errorf("create drill client: %w", err)
		}
		clientID := id
		defer func() {
			// A fresh admin token: the revocation may have killed the key
			// that signed the first one.
			cctx := context.WithoutCancel(ctx)
			ac, err := newAdminClient(cctx, adminURL)
			if err == nil {
				err = ac.do(cctx, http.MethodDelete, "/admin/clients/"+clientID, nil, nil)
			}
			if err != nil {
				d.logf("could not delete client %s: %v", clientID, err)
			}
		}()
		cc := clientcredentials.Config{ClientID: id, ClientSecret: created.ClientSecret, TokenURL: d.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
		sources = append(sources, cc)
	}

	verifiers, err := d.verifiers(ctx, meta.JWKSURI)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, v := range verifiers {
			v.close()
		}
	}()
	d.results = make([]drillResult, len(verifiers))
	for i, v := range verifiers {
		d.results[i].Verifier = v.name
	}
	d.sample = map[string]string{}

	runCtx, stop := context.WithTimeout(ctx, d.duration)
	defer stop()
	var wg sync.WaitGroup
	for i := range d.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(runCtx, sources[i%len(sources)], verifiers)
		}()
	}
	d.logf("issuing and verifying tokens for %s with %d verifiers, algorithms %v", d.duration, len(verifiers), algs)

	report := &drillReport{Issuer: d.issuer, Duration: d.duration.String()}
	var stepErr error
	select {
	case <-time.After(d.duration / 4):
		report.Rotated, report.RevokedKID, stepErr = d.rotate(runCtx, ac)
	case <-runCtx.Done():
	}
	wg.Wait()
	if stepErr != nil {
		return nil, stepErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	report.Tokens = d.tokens
	report.Results = d.results
	return report, nil
}

// rotate triggers the rotation and, with --revoke-retired, revokes the key
// the rotation retired, keeping a token it signed to watch the verifiers
// drop it.
func (d *drill) rotate(ctx context.Context, ac *adminClient) (activated []string, revoked string, err error) {
	before, err := d.keys(ctx, ac)
	if err != nil {
		return nil, "", err
	}
	path := "/admin/keys/rotate"
	if d.force {
		path += "?force=true"
	}
	var after struct{ Keys []keyRow }
	if err := ac.do(ctx, http.MethodPost, path, nil, &after); err != nil {
		return nil, "", fmt.Errorf("rotate: %w (a pending key younger than jwks.max_age is not activated without --force)", err)
	}
	for _, k := range after.Keys {
		if k.State == "active" {
			activated = append(activated, k.Alg+":"+k.KID)
		}
	}
	d.logf("rotated: active now %v", activated)
	if !d.revoke {
		return activated, "", nil
	}
	for _, k := range before {
		if k.State != "active" {
			continue
		}
		d.mu.Lock()
		_, signed := d.sample[k.KID]
		d.mu.Unlock()
		if !signed {
			continue
		}
		if err := ac.do(ctx, http.MethodPost, "/admin/keys/"+url.PathEscape(k.KID)+"/revoke", nil, nil); err != nil {
			return activated, "", fmt.Errorf("revoke %s: %w", k.KID, err)
		}
		d.mu.Lock()
		d.revoked, d.revokedAt = k.KID, time.Now()
		d.mu.Unlock()
		d.logf("revoked the retired key %s", k.KID)
		return activated, k.KID, nil
	}
	return activated, "", errors.New("--revoke-retired: no retired key had signed a drill token yet; run a longer drill")
}

// work issues tokens and has every verifier check each one.
func (d *drill) work(ctx context.Context, cc clientcredentials.Config, verifiers []drillVerifier) {
	hctx := context.WithValue(ctx, oauth2.HTTPClient, d.http)
	for ctx.Err() == nil {
		tok, err := cc.Token(hctx) // a fresh token each time, as many clients would ask

		if err != nil {
			if ctx.Err() == nil {
				d.logf("token request failed: %v", err)
			}
			return
		}
		kid := headerKID(tok.AccessToken)
		d.mu.Lock()
		d.tokens++
		if _, ok := d.sample[kid]; !ok {
			d.sample[kid] = tok.AccessToken
		}
		revoked, revokedAt, old := d.revoked, d.revokedAt, d.sample[d.revoked]
		d.mu.Unlock()
		for i, v := range verifiers {
			err := v.verify(ctx, tok.AccessToken)
			if ctx.Err() != nil {
				return
			}
			now := time.Now()
			d.mu.Lock()
			r := &d.results[i]
			r.Checked++
			if err != nil && kid != revoked {
				r.Rejected++
				if r.FirstRejection.IsZero() {
					r.FirstRejection, r.FirstError = now, err.Error()
				}
				r.LastRejection = now
			}
			d.mu.Unlock()
			if revoked != "" && old != "" {
				if v.verify(ctx, old) != nil {
					d.mu.Lock()
					if r.RevokedKeyRejectedAfter == "" {
						r.RevokedKeyRejectedAfter = now.Sub(revokedAt).Round(time.Millisecond).String()
					}
					d.mu.Unlock()
				}
			}
		}
	}
}

// verifiers builds the three ways services verify, each as its authors'
// defaults configure it.
func (d *drill) verifiers(ctx context.Context, jwksURL string) ([]drillVerifier, error) {
	var out []drillVerifier
	ours, err := jwks.NewVerifier(ctx, d.issuer, jwks.WithAudience(drillAudience), jwks.WithHTTPClient(d.http), jwks.WithInsecureHTTP())
	if err != nil {
		return nil, fmt.Errorf("signet jwks.Verifier: %w", err)
	}
	out = append(out, drillVerifier{name: "signet jwks.Verifier", close: func() { ours.Close() },
		verify: func(ctx context.Context, tok string) error { _, err := ours.Verify(ctx, tok); return err }})

	cache := jwk.NewCache(ctx)
	if err := cache.Register(jwksURL, jwk.WithHTTPClient(d.http)); err != nil {
		return nil, fmt.Errorf("jwx jwk.Cache: %w", err)
	}
	if _, err := cache.Refresh(ctx, jwksURL); err != nil {
		return nil, fmt.Errorf("jwx jwk.Cache: %w", err)
	}
	cached := jwk.NewCachedSet(cache, jwksURL)
	out = append(out, drillVerifier{name: "jwx jwk.Cache", close: func() {},
		verify: func(ctx context.Context, tok string) error {
			_, err := jwt.Parse([]byte(tok), jwt.WithKeySet(cached), jwt.WithValidate(true),
				jwt.WithIssuer(d.issuer), jwt.WithAudience(drillAudience), jwt.WithContext(ctx))
			return err
		}})

	remote := oidc.NewRemoteKeySet(oidc.ClientContext(ctx, d.http), jwksURL)
	out = append(out, drillVerifier{name: "go-oidc RemoteKeySet", close: func() {},
		verify: func(ctx context.Context, tok string) error {
			payload, err := remote.VerifySignature(ctx, tok)
			if err != nil {
				return err
			}
			var c struct {
				Iss string `json:"iss"`
				Exp int64  `json:"exp"`
			}
			if err := json.Unmarshal(payload, &c); err != nil {
				return err
			}
			if c.Iss != d.issuer || time.Now().Unix() >= c.Exp {
				return fmt.Errorf("claims: iss %q exp %d", c.Iss, c.Exp)
			}
			return nil
		}})
	return out, nil
}

type keyRow struct {
	KID   string `json:"kid"`
	Alg   string `json:"alg"`
	State string `json:"state"`
}

func (d *drill) keys(ctx context.Context, ac *adminClient) ([]keyRow, error) {
	var out struct{ Keys []keyRow }
	if err := ac.do(ctx, http.MethodGet, "/admin/keys", nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

func (d *drill) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// headerKID reads the kid of a compact JWS without verifying it.
func headerKID(tok string) string {
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.Kid
}

func printDrill(w io.Writer, r *drillReport) {
	fmt.Fprintf(w, "issuer %s, %s, %d tokens, rotated to %v", r.Issuer, r.Duration, r.Tokens, r.Rotated)
	if r.RevokedKID != "" {
		fmt.Fprintf(w, ", revoked %s", r.RevokedKID)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERIFIER\tCHECKED\tVALID REJECTED\tREJECTION WINDOW\tREVOKED KEY REFUSED AFTER\tFIRST ERROR")
	for _, x := range r.Results {
		window := "-"
		if x.Rejected > 0 {
			window = x.LastRejection.Sub(x.FirstRejection).Round(time.Millisecond).String()
		}
		refused := "-"
		if r.RevokedKID != "" {
			refused = x.RevokedKeyRejectedAfter
			if refused == "" {
				refused = "still accepted"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", x.Verifier, x.Checked, x.Rejected, window, refused, orDash(x.FirstError))
	}
	_ = tw.Flush()
}
