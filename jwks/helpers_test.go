package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// fakeClock is a settable clock. With armed set, its After (used as the
// refresher's timer) reports each arming on armed, so a test knows the
// refresher is parked before it moves time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	armed  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves time on and fires due timers; it reports whether any fired.
func (c *fakeClock) Advance(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	fired := false
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if !c.now.Before(tm.at) {
			tm.ch <- c.now
			fired = true
			continue
		}
		kept = append(kept, tm)
	}
	c.timers = kept
	return fired
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	if d <= 0 {
		ch <- c.now
	} else {
		c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	}
	armed := c.armed
	c.mu.Unlock()
	if armed != nil {
		armed <- d
	}
	return ch
}

// testKey is a signing key and its published JWK.
type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
	pub  jwk.Key
}

func loadRSA(t testing.TB, name string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// newTestKey makes a key for alg. RS256 and PS256 use the two stored RSA
// keys (so their kids differ); EC and Ed25519 keys are generated.
func newTestKey(t testing.TB, alg string) *testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256", "RS384", "RS512":
		priv = loadRSA(t, "rsa2048_a.pem")
	case "PS256", "PS384", "PS512":
		priv = loadRSA(t, "rsa2048_b.pem")
	case "RS1024":
		priv, alg = loadRSA(t, "rsa1024.pem"), "RS256"
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("newTestKey: alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return &testKey{kid: kid, alg: alg, priv: priv, pub: pub}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw signs the exact header and payload bytes with k under alg.
func signRaw(t testing.TB, k *testKey, alg string, hdr, payload []byte) string {
	t.Helper()
	input := b64u(hdr) + "." + b64u(payload)
	s, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign([]byte(input), k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64u(sig)
}

// sign signs claims with k, header {alg, kid, typ: at+jwt} plus extra
// (a nil value in extra removes a member).
func sign(t testing.TB, k *testKey, claims map[string]any, extra map[string]any) string {
	t.Helper()
	hdr := map[string]any{"alg": k.alg, "kid": k.kid, "typ": "at+jwt"}
	for n, v := range extra {
		if v == nil {
			delete(hdr, n)
		} else {
			hdr[n] = v
		}
	}
	alg, _ := hdr["alg"].(string)
	return signRaw(t, k, alg, mustJSON(t, hdr), mustJSON(t, claims))
}

// fakeIssuer serves metadata, a JWKS and a revocation feed, and counts
// requests.
type fakeIssuer struct {
	srv *httptest.Server

	mu         sync.Mutex
	entries    []any  // published JWKS entries
	jwksStatus int    // non-zero: answer with this status
	jwksBody   []byte // non-nil: serve these bytes as the JWKS
	maxAge     int    // -1: no Cache-Control
	feed       RevocationFeed
	feedMaxAge int
	noDiscover bool   // 404 on the RFC 8414 path
	hook       func() // called at the start of each JWKS request

	metaRequests    atomic.Int64
	jwksRequests    atomic.Int64
	jwksNotModified atomic.Int64
	feedRequests    atomic.Int64
}

func newFakeIssuer(t testing.TB, keys ...*testKey) *fakeIssuer {
	f := &fakeIssuer{maxAge: 300, feedMaxAge: 30}
	f.publish(keys...)
	mux := http.NewServeMux()
	meta := func(w http.ResponseWriter, r *http.Request) {
		f.metaRequests.Add(1)
		f.mu.Lock()
		nd := f.noDiscover
		f.mu.Unlock()
		if nd && r.URL.Path == "/.well-known/oauth-authorization-server" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":          f.srv.URL,
			"jwks_uri":        f.srv.URL + "/.well-known/jwks.json",
			"revocation_feed": f.srv.URL + "/feed",
		})
	}
	mux.HandleFunc("/.well-known/oauth-authorization-server", meta)
	mux.HandleFunc("/.well-known/openid-configuration", meta)
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		f.jwksRequests.Add(1)
		f.mu.Lock()
		status, body, maxAge, hook := f.jwksStatus, f.jwksBody, f.maxAge, f.hook
		if body == nil {
			body, _ = json.Marshal(map[string]any{"keys": f.entries})
		}
		f.mu.Unlock()
		if hook != nil {
			hook()
		}
		if status != 0 {
			http.Error(w, "boom", status)
			return
		}
		if f.serveCached(w, r, body, maxAge) {
			f.jwksNotModified.Add(1)
		}
	})
	mux.HandleFunc("/feed", func(w http.ResponseWriter, r *http.Request) {
		f.feedRequests.Add(1)
		f.mu.Lock()
		body, _ := json.Marshal(f.feed)
		maxAge := f.feedMaxAge
		f.mu.Unlock()
		f.serveCached(w, r, body, maxAge)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// serveCached writes body with an ETag and max-age, or 304 when the
// request's If-None-Match matches. It reports whether it sent 304.
func (f *fakeIssuer) serveCached(w http.ResponseWriter, r *http.Request, body []byte, maxAge int) bool {
	sum := sha256.Sum256(body)
	etag := fmt.Sprintf(`"%x"`, sum[:8])
	w.Header().Set("ETag", etag)
	if maxAge >= 0 {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	return false
}

func (f *fakeIssuer) URL() string { return f.srv.URL }

func (f *fakeIssuer) publish(keys ...*testKey) {
	entries := make([]any, 0, len(keys))
	for _, k := range keys {
		entries = append(entries, k.pub)
	}
	f.publishRaw(entries...)
}

func (f *fakeIssuer) publishRaw(entries ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
}

func (f *fakeIssuer) set(fn func(f *fakeIssuer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// claims are valid claims for f at now.
func (f *fakeIssuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       f.URL(),
		"sub":       "user-1",
		"aud":       "api",
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"jti":       "jti-1",
		"client_id": "client-1",
		"scope":     "read write",
	}
}

// newTestVerifier builds a verifier for f with audience "api", the fake
// clock, and opts; it is closed at the end of the test.
func newTestVerifier(t testing.TB, f *fakeIssuer, clk *fakeClock, opts ...Option) *Verifier {
	t.Helper()
	return newTestVerifierCtx(t, t.Context(), f, clk, opts...)
}

// newTestVerifierCtx is newTestVerifier with NewVerifier's context.
func newTestVerifierCtx(t testing.TB, ctx context.Context, f *fakeIssuer, clk *fakeClock, opts ...Option) *Verifier {
	t.Helper()
	all := append([]Option{WithAudience("api"), WithClock(clk.Now)}, opts...)
	v, err := NewVerifier(ctx, f.URL(), all...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// withTimer is an in-package option that drives the refresher from clk.
func withTimer(clk *fakeClock, refreshed func()) Option {
	return func(c *config) {
		c.after = clk.After
		c.refreshed = refreshed
	}
}
