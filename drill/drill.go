// Package drill is the key-rotation drill: against a running Signet it
// issues tokens and verifies them with several real verifiers (this
// repository's jwks, go-oidc, a jwx cache) while it rotates the signing keys
// (and optionally revokes the retired ones), and reports every valid token
// a verifier refused. `signet drill` runs it.
package drill

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
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/jwks"
)

// Audience is the audience of the drill's own clients.
const Audience = "signet-drill"

// verifier is one way real services verify tokens.
type verifier struct {
	name   string
	verify func(ctx context.Context, token string) error
	close  func()
}

// Result is what one verifier saw during the drill.
type Result struct {
	Verifier string `json:"verifier"`
	Checked  int    `json:"checked"`
	// Rejected counts valid tokens (signed by a live key, unexpired) the
	// verifier refused: each is a request a real service would have failed.
	Rejected       int       `json:"rejected"`
	FirstRejection time.Time `json:"first_rejection,omitzero"`
	LastRejection  time.Time `json:"last_rejection,omitzero"`
	FirstError     string    `json:"first_error,omitempty"`
	// RevokedKeyRejectedAfter is, per revoked kid, how long after the
	// emergency revocation the verifier started refusing a token of that
	// key; a kid is missing when it still accepted it at the end.
	RevokedKeyRejectedAfter map[string]string `json:"revoked_key_rejected_after,omitempty"`
	// StillAccepted explains, when a revoked key was still accepted at the
	// end, which cache keeps it and for how long.
	StillAccepted string `json:"still_accepted,omitempty"`
}

// Report is the outcome, printed as a table or JSON.
type Report struct {
	Issuer      string   `json:"issuer"`
	Duration    string   `json:"duration"`
	Tokens      int      `json:"tokens"`
	Rotated     []string `json:"rotated_to"`
	RevokedKIDs []string `json:"revoked_kids,omitempty"`
	// JWKSMaxAge is the max-age the JWKS endpoint sends: the cache
	// lifetime behind most "still accepted".
	JWKSMaxAge string   `json:"jwks_max_age"`
	Results    []Result `json:"results"`
}

// Admin is the part of the admin API client the drill uses: one JSON call.
type Admin interface {
	Do(ctx context.Context, method, path string, body, out any) error
}

// Options are the drill's settings (the flags of `signet drill`).
type Options struct {
	Issuer   string
	Duration time.Duration // the rotation happens at a quarter of it
	Force    bool          // rotate even with a pending key younger than the JWKS max-age
	Revoke   bool          // after the rotation, revoke the retired keys
	Workers  int           // concurrent token requests
	Log      io.Writer     // progress lines
	// NewAdmin returns an admin API client with a fresh token; the drill
	// asks again after a revocation, which may have killed the key that
	// signed the first one.
	NewAdmin func(ctx context.Context) (Admin, error)
}

// Run runs the drill and reports what every verifier saw.
func Run(ctx context.Context, o Options) (*Report, error) {
	d := &runner{issuer: strings.TrimSuffix(o.Issuer, "/"), duration: o.Duration, force: o.Force, revoke: o.Revoke,
		workers: o.Workers, log: o.Log, newAdmin: o.NewAdmin}
	return d.run(ctx)
}

type runner struct {
	issuer   string
	duration time.Duration
	force    bool
	revoke   bool
	workers  int
	log      io.Writer
	http     *http.Client

	newAdmin func(ctx context.Context) (Admin, error)

	maxAge time.Duration // the JWKS max-age

	mu      sync.Mutex
	results []Result
	tokens  int
	sample  map[string]string    // kid -> a token it signed
	revoked map[string]time.Time // kid -> when it was revoked
}

func (d *runner) logf(format string, args ...any) {
	fmt.Fprintf(d.log, "drill: "+format+"\n", args...)
}

func (d *runner) run(ctx context.Context) (*Report, error) {
	d.http = &http.Client{Timeout: 10 * time.Second}
	ac, err := d.newAdmin(ctx)
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
	if d.maxAge, err = d.jwksMaxAge(ctx, meta.JWKSURI); err != nil {
		return nil, err
	}
	// Before anything is created or run: a rotation that would be refused
	// (or would reject tokens) fails now, not after the whole --duration.
	if err := d.preconditions(keyList, time.Now()); err != nil {
		return nil, err
	}
	var algs []string
	for _, k := range keyList {
		if k.State == "active" {
			algs = append(algs, k.Alg)
		}
	}
	slices.Sort(algs)
	// Every algorithm needs a worker, or its key never signs a drill token.
	d.workers = max(d.workers, len(algs))

	// One client per live algorithm, removed at the end.
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	var sources []clientcredentials.Config
	for _, alg := range algs {
		id := "signet-drill-" + strings.ToLower(alg) + "-" + base64.RawURLEncoding.EncodeToString(suffix[:])
		var created admin.ClientWithSecret
		spec := clients.Client{ID: id, GrantTypes: []string{clients.GrantClientCredentials}, Audiences: []string{Audience}, SigningAlg: alg}
		if err := ac.Do(ctx, http.MethodPost, "/admin/clients", spec, &created); err != nil {
			return nil, fmt.Errorf("create drill client: %w", err)
		}
		clientID := id
		defer func() {
			// A fresh admin token: the revocation may have killed the key
			// that signed the first one.
			cctx := context.WithoutCancel(ctx)
			ac, err := d.newAdmin(cctx)
			if err == nil {
				err = ac.Do(cctx, http.MethodDelete, "/admin/clients/"+clientID, nil, nil)
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
	d.results = make([]Result, len(verifiers))
	for i, v := range verifiers {
		d.results[i].Verifier = v.name
	}
	d.sample = map[string]string{}
	d.revoked = map[string]time.Time{}

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

	report := &Report{Issuer: d.issuer, Duration: d.duration.String(), JWKSMaxAge: d.maxAge.String()}
	var stepErr error
	select {
	case <-time.After(d.duration / 4):
		report.Rotated, report.RevokedKIDs, stepErr = d.rotate(runCtx, ac)
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
	for i := range report.Results {
		r := &report.Results[i]
		if len(r.RevokedKeyRejectedAfter) < len(report.RevokedKIDs) {
			r.StillAccepted = stillAccepted(r.Verifier, d.maxAge)
		}
	}
	return report, nil
}

// preconditions refuses, before the drill starts, a rotation that the
// server would refuse at a quarter of --duration (a pending key published
// for less than the JWKS max-age by then) or that would activate a key no
// verifier has seen (no pending key). --force skips them.
func (d *runner) preconditions(keyList []keyRow, now time.Time) error {
	if d.force {
		return nil
	}
	rotateAt := now.Add(d.duration / 4)
	pending := map[string]keyRow{}
	for _, k := range keyList {
		if k.State == "pending" {
			pending[k.Alg] = k
		}
	}
	var errs []error
	for _, k := range keyList {
		if k.State != "active" {
			continue
		}
		p, ok := pending[k.Alg]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s has no pending key: the rotation would activate a key no verifier has fetched", k.Alg))
		case p.CreatedAt.Add(d.maxAge).After(rotateAt):
			wait := p.CreatedAt.Add(d.maxAge).Sub(rotateAt).Round(time.Second)
			errs = append(errs, fmt.Errorf("the pending %s key %s was published %s ago; at the rotation (%s into the drill) it will have been published for less than the JWKS max-age %s: wait %s or run a longer drill",
				k.Alg, p.KID, now.Sub(p.CreatedAt).Round(time.Second), d.duration/4, d.maxAge, max(wait, time.Second)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w\n--force rotates anyway (verifiers whose cached JWKS lacks the new key then reject its tokens)", errors.Join(errs...))
	}
	return nil
}

// jwksMaxAge reads the max-age the JWKS endpoint sends (0 without one).
func (d *runner) jwksMaxAge(ctx context.Context, u string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	for _, dir := range strings.Split(resp.Header.Get("Cache-Control"), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(dir), "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second, nil
			}
		}
	}
	return 0, nil
}

// stillAccepted says why a verifier of the drill's kind still accepts a
// revoked key: the cache that holds it and how long that cache lives.
func stillAccepted(verifier string, maxAge time.Duration) string {
	switch verifier {
	case "signet jwks.Verifier":
		refresh := min(max(maxAge, jwks.DefaultMinRefreshInterval), time.Hour)
		if maxAge == 0 {
			refresh = 5 * time.Minute
		}
		return fmt.Sprintf("its cached JWKS is refreshed every %s (the JWKS max-age %s, at least %s, at most 1h); "+
			"the revoked key is refused after the next refresh",
			refresh, maxAge, jwks.DefaultMinRefreshInterval)
	case "jwx jwk.Cache":
		return fmt.Sprintf("jwk.Cache refreshes every max(JWKS max-age %s, its minimum refresh interval 15m) by default, "+
			"so the revoked key is accepted for up to %s; lower it with jwk.WithMinRefreshInterval", maxAge, max(maxAge, 15*time.Minute))
	case "go-oidc RemoteKeySet":
		return "RemoteKeySet fetches the JWKS again only for a kid it has not seen: a revoked key it already holds is accepted " +
			"until the process restarts, whatever the max-age; restart such services after an emergency revocation"
	}
	return fmt.Sprintf("its cache of the JWKS (max-age %s) still holds the revoked key", maxAge)
}

// rotate triggers the rotation and, with --revoke-retired, revokes the key
// the rotation retired of every algorithm, keeping a token each signed to
// watch the verifiers drop it.
func (d *runner) rotate(ctx context.Context, ac Admin) (activated []string, revoked []string, err error) {
	before, err := d.keys(ctx, ac)
	if err != nil {
		return nil, nil, err
	}
	path := "/admin/keys/rotate"
	if d.force {
		path += "?force=true"
	}
	var after struct{ Keys []keyRow }
	if err := ac.Do(ctx, http.MethodPost, path, nil, &after); err != nil {
		return nil, nil, fmt.Errorf("rotate: %w", err)
	}
	for _, k := range after.Keys {
		if k.State == "active" {
			activated = append(activated, k.Alg+":"+k.KID)
		}
	}
	d.logf("rotated: active now %v", activated)
	if !d.revoke {
		return activated, nil, nil
	}
	for _, k := range before {
		if k.State != "active" {
			continue
		}
		if err := ac.Do(ctx, http.MethodPost, "/admin/keys/"+url.PathEscape(k.KID)+"/revoke", nil, nil); err != nil {
			return activated, revoked, fmt.Errorf("revoke %s: %w", k.KID, err)
		}
		// The admin token may have been signed by the key just revoked:
		// a fresh one, signed by the new active key, for the next call.
		if ac, err = d.newAdmin(ctx); err != nil {
			return activated, revoked, fmt.Errorf("admin token after revoking %s: %w", k.KID, err)
		}
		d.mu.Lock()
		d.revoked[k.KID] = time.Now()
		_, signed := d.sample[k.KID]
		d.mu.Unlock()
		revoked = append(revoked, k.KID)
		d.logf("revoked the retired %s key %s", k.Alg, k.KID)
		if !signed {
			d.logf("no drill token of %s was issued before the rotation: the report cannot show when verifiers refuse it", k.KID)
		}
	}
	return activated, revoked, nil
}

// work issues tokens and has every verifier check each one.
func (d *runner) work(ctx context.Context, cc clientcredentials.Config, verifiers []verifier) {
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
		_, kidRevoked := d.revoked[kid]
		type oldToken struct {
			kid, token string
			at         time.Time
		}
		var olds []oldToken
		for k, at := range d.revoked {
			if s, ok := d.sample[k]; ok {
				olds = append(olds, oldToken{k, s, at})
			}
		}
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
			if err != nil && !kidRevoked {
				r.Rejected++
				if r.FirstRejection.IsZero() {
					r.FirstRejection, r.FirstError = now, err.Error()
				}
				r.LastRejection = now
			}
			d.mu.Unlock()
			for _, old := range olds {
				if v.verify(ctx, old.token) != nil {
					d.mu.Lock()
					if _, seen := r.RevokedKeyRejectedAfter[old.kid]; !seen {
						if r.RevokedKeyRejectedAfter == nil {
							r.RevokedKeyRejectedAfter = map[string]string{}
						}
						r.RevokedKeyRejectedAfter[old.kid] = now.Sub(old.at).Round(time.Millisecond).String()
					}
					d.mu.Unlock()
				}
			}
		}
	}
}

// verifiers builds the three ways services verify, each as its authors'
// defaults configure it.
func (d *runner) verifiers(ctx context.Context, jwksURL string) ([]verifier, error) {
	var out []verifier
	ours, err := jwks.NewVerifier(ctx, d.issuer, jwks.WithAudience(Audience), jwks.WithHTTPClient(d.http), jwks.WithInsecureHTTP())
	if err != nil {
		return nil, fmt.Errorf("signet jwks.Verifier: %w", err)
	}
	out = append(out, verifier{name: "signet jwks.Verifier", close: func() { ours.Close() },
		verify: func(ctx context.Context, tok string) error { _, err := ours.Verify(ctx, tok); return err }})

	cache := jwk.NewCache(ctx)
	if err := cache.Register(jwksURL, jwk.WithHTTPClient(d.http)); err != nil {
		return nil, fmt.Errorf("jwx jwk.Cache: %w", err)
	}
	if _, err := cache.Refresh(ctx, jwksURL); err != nil {
		return nil, fmt.Errorf("jwx jwk.Cache: %w", err)
	}
	cached := jwk.NewCachedSet(cache, jwksURL)
	out = append(out, verifier{name: "jwx jwk.Cache", close: func() {},
		verify: func(ctx context.Context, tok string) error {
			_, err := jwt.Parse([]byte(tok), jwt.WithKeySet(cached), jwt.WithValidate(true),
				jwt.WithIssuer(d.issuer), jwt.WithAudience(Audience), jwt.WithContext(ctx))
			return err
		}})

	remote := oidc.NewRemoteKeySet(oidc.ClientContext(ctx, d.http), jwksURL)
	out = append(out, verifier{name: "go-oidc RemoteKeySet", close: func() {},
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
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
}

func (d *runner) keys(ctx context.Context, ac Admin) ([]keyRow, error) {
	var out struct{ Keys []keyRow }
	if err := ac.Do(ctx, http.MethodGet, "/admin/keys", nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

func (d *runner) getJSON(ctx context.Context, u string, v any) error {
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

func Print(w io.Writer, r *Report) {
	fmt.Fprintf(w, "issuer %s, %s, %d tokens, JWKS max-age %s, rotated to %v", r.Issuer, r.Duration, r.Tokens, r.JWKSMaxAge, r.Rotated)
	if len(r.RevokedKIDs) > 0 {
		fmt.Fprintf(w, ", revoked %s", strings.Join(r.RevokedKIDs, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERIFIER\tCHECKED\tVALID REJECTED\tREJECTION WINDOW\tREVOKED KEYS REFUSED AFTER\tFIRST ERROR")
	for _, x := range r.Results {
		window := "-"
		if x.Rejected > 0 {
			window = x.LastRejection.Sub(x.FirstRejection).Round(time.Millisecond).String()
		}
		refused := "-"
		if len(r.RevokedKIDs) > 0 {
			var parts []string
			for _, kid := range r.RevokedKIDs {
				after, ok := x.RevokedKeyRejectedAfter[kid]
				if !ok {
					after = "still accepted"
				}
				parts = append(parts, shortKID(kid)+" "+after)
			}
			refused = strings.Join(parts, "; ")
		}
		firstErr := x.FirstError
		if firstErr == "" {
			firstErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", x.Verifier, x.Checked, x.Rejected, window, refused, firstErr)
	}
	_ = tw.Flush()
	for _, x := range r.Results {
		if x.StillAccepted != "" {
			fmt.Fprintf(w, "\n%s still accepts a revoked key: %s.\n", x.Verifier, x.StillAccepted)
		}
	}
}

// shortKID abbreviates a kid for the table.
func shortKID(kid string) string {
	if len(kid) > 8 {
		return kid[:8]
	}
	return kid
}
