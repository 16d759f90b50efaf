package jwks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// attackEnv is what an attack row builds its token from.
type attackEnv struct {
	t       *testing.T
	f       *fakeIssuer
	v       *Verifier
	clk     *fakeClock
	rs, ps  *testKey // RS256 and PS256 keys, published
	es      *testKey // ES256 key, published
	claims  map[string]any
	removed *testKey // RS256-like key removed from the JWKS after a refresh
}

func hs256(key []byte, hdr, payload []byte) string {
	in := b64u(hdr) + "." + b64u(payload)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(in))
	return in + "." + b64u(m.Sum(nil))
}

func TestVerifier_Verify_Attacks(t *testing.T) {
	rs, ps, es := newTestKey(t, "RS256"), newTestKey(t, "PS256"), newTestKey(t, "ES256")
	rsaPub := rs.priv.Public()
	der, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	with := func(c map[string]any, kv ...any) map[string]any {
		out := make(map[string]any, len(c))
		for k, v := range c {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}

	tests := []struct {
		name    string
		token   func(e *attackEnv) string
		want    error
		fetches int64 // JWKS requests the row may cause
	}{
		{"alg none, empty signature", func(e *attackEnv) string {
			return b64u(mustJSON(e.t, map[string]any{"alg": "none", "kid": e.rs.kid, "typ": "at+jwt"})) + "." + b64u(mustJSON(e.t, e.claims)) + "."
		}, ErrUnsupportedAlgorithm, 0},
		{"alg none, RS256 signature kept", func(e *attackEnv) string {
			good := sign(e.t, e.rs, e.claims, nil)
			return b64u(mustJSON(e.t, map[string]any{"alg": "none", "kid": e.rs.kid, "typ": "at+jwt"})) + good[strings.IndexByte(good, '.'):]
		}, ErrUnsupportedAlgorithm, 0},
		{"alg NONE uppercase", func(e *attackEnv) string {
			return b64u(mustJSON(e.t, map[string]any{"alg": "NONE", "kid": e.rs.kid, "typ": "at+jwt"})) + "." + b64u(mustJSON(e.t, e.claims)) + ".AA"
		}, ErrUnsupportedAlgorithm, 0},
		{"HS256 with RSA public key PEM as secret", func(e *attackEnv) string {
			return hs256(pemBytes, mustJSON(e.t, map[string]any{"alg": "HS256", "kid": e.rs.kid, "typ": "at+jwt"}), mustJSON(e.t, e.claims))
		}, ErrUnsupportedAlgorithm, 0},
		{"HS256 with RSA public key DER as secret", func(e *attackEnv) string {
			return hs256(der, mustJSON(e.t, map[string]any{"alg": "HS256", "kid": e.rs.kid, "typ": "at+jwt"}), mustJSON(e.t, e.claims))
		}, ErrUnsupportedAlgorithm, 0},
		{"HS256 with the JWK JSON as secret", func(e *attackEnv) string {
			return hs256(mustJSON(e.t, e.rs.pub), mustJSON(e.t, map[string]any{"alg": "HS256", "kid": e.rs.kid, "typ": "at+jwt"}), mustJSON(e.t, e.claims))
		}, ErrUnsupportedAlgorithm, 0},
		{"alg PS512 not allowed", func(e *attackEnv) string {
			return sign(e.t, e.ps, e.claims, map[string]any{"alg": "PS512"})
		}, ErrUnsupportedAlgorithm, 0},
		{"RS256 header naming the EC key", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"kid": e.es.kid})
		}, ErrAlgorithmMismatch, 0},
		{"PS256 signature by the RS256 key", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"alg": "PS256"})
		}, ErrAlgorithmMismatch, 0},
		{"unknown kid", func(e *attackEnv) string {
			return sign(e.t, newTestKey(e.t, "ES256"), e.claims, nil)
		}, ErrUnknownKey, 1},
		{"no kid", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"kid": nil})
		}, ErrUnknownKey, 0},
		{"kid path traversal", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"kid": "../../etc/passwd"})
		}, ErrMalformed, 0},
		{"kid SQL injection", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"kid": "' OR 1=1--"})
		}, ErrMalformed, 0},
		{"kid 10 kB", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"kid": strings.Repeat("a", 10_000)})
		}, ErrMalformed, 0},
		{"header jwk (self-signed)", func(e *attackEnv) string {
			evil := newTestKey(e.t, "ES256")
			return sign(e.t, evil, e.claims, map[string]any{"jwk": evil.pub})
		}, ErrForbiddenHeader, 0},
		{"header jwk with published kid", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"jwk": e.rs.pub})
		}, ErrForbiddenHeader, 0},
		{"header jku", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"jku": "https://evil.example/jwks.json"})
		}, ErrForbiddenHeader, 0},
		{"header x5u", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"x5u": "https://evil.example/cert.pem"})
		}, ErrForbiddenHeader, 0},
		{"header x5c", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"x5c": []string{"MIIB"}})
		}, ErrForbiddenHeader, 0},
		{"crit [exp]", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"crit": []string{"exp"}})
		}, ErrForbiddenHeader, 0},
		{"crit []", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"crit": []string{}})
		}, ErrForbiddenHeader, 0},
		{"b64 false", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"b64": false, "crit": []string{"b64"}})
		}, ErrForbiddenHeader, 0},
		{"nested JWT (cty)", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"cty": "JWT"})
		}, ErrForbiddenHeader, 0},
		{"duplicate alg in header", func(e *attackEnv) string {
			return signRaw(e.t, e.rs, "RS256", []byte(`{"alg":"RS256","kid":"`+e.rs.kid+`","typ":"at+jwt","alg":"none"}`), mustJSON(e.t, e.claims))
		}, ErrMalformed, 0},
		{"duplicate exp claim", func(e *attackEnv) string {
			p := mustJSON(e.t, e.claims)
			p = append(p[:len(p)-1], []byte(`,"exp":99999999999}`)...)
			return signRaw(e.t, e.rs, "RS256", mustJSON(e.t, map[string]any{"alg": "RS256", "kid": e.rs.kid, "typ": "at+jwt"}), p)
		}, ErrMalformed, 0},
		{"expired", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "exp", e.clk.Now().Add(-31*time.Second).Unix()), nil)
		}, ErrExpired, 0},
		{"exp missing", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "exp", nil), nil)
		}, ErrMissingClaim, 0},
		{"exp as string", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "exp", "9999999999"), nil)
		}, ErrMalformed, 0},
		{"exp 1e300", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "exp", 1e300), nil)
		}, ErrMalformed, 0},
		{"nbf in the future", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "nbf", e.clk.Now().Add(31*time.Second).Unix()), nil)
		}, ErrNotYetValid, 0},
		{"iat in the future", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "iat", e.clk.Now().Add(31*time.Second).Unix()), nil)
		}, ErrIssuedInFuture, 0},
		{"iat missing", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "iat", nil), nil)
		}, ErrMissingClaim, 0},
		{"wrong iss", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "iss", "https://evil.example"), nil)
		}, ErrIssuer, 0},
		{"iss with trailing slash", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "iss", e.f.URL()+"/"), nil)
		}, ErrIssuer, 0},
		{"wrong aud", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "aud", []string{"other", "billing"}), nil)
		}, ErrAudience, 0},
		{"aud empty array", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "aud", []string{}), nil)
		}, ErrAudience, 0},
		{"aud number", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "aud", 1), nil)
		}, ErrMalformed, 0},
		{"aud with a number element", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "aud", []any{"api", 1}), nil)
		}, ErrMalformed, 0},
		{"sub missing", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "sub", nil), nil)
		}, ErrMissingClaim, 0},
		{"client_id missing", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "client_id", nil), nil)
		}, ErrMissingClaim, 0},
		{"jti missing", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "jti", nil), nil)
		}, ErrMissingClaim, 0},
		{"typ missing", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"typ": nil})
		}, ErrType, 0},
		{"typ JWT", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"typ": "JWT"})
		}, ErrType, 0},
		{"typ as number", func(e *attackEnv) string {
			return sign(e.t, e.rs, e.claims, map[string]any{"typ": 1})
		}, ErrMalformed, 0},
		{"key removed from the JWKS after refresh", func(e *attackEnv) string {
			return sign(e.t, e.removed, e.claims, nil)
		}, ErrUnknownKey, 1},
		{"denylisted jti", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "jti", "revoked-jti"), nil)
		}, ErrRevoked, 0},
		{"issued before the subject's cutoff", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "sub", "fired-user", "iat", e.clk.Now().Add(-time.Second).Unix()), nil)
		}, ErrRevoked, 0},
		{"1 MB token", func(e *attackEnv) string {
			return sign(e.t, e.rs, with(e.claims, "pad", strings.Repeat("x", 1<<20)), nil)
		}, ErrMalformed, 0},
		{"1e6 dots", func(e *attackEnv) string { return strings.Repeat(".", 1_000_000) }, ErrMalformed, 0},
		{"garbage", func(e *attackEnv) string { return "this is not a token" }, ErrMalformed, 0},
		{"empty", func(e *attackEnv) string { return "" }, ErrMalformed, 0},
		{"two dots only", func(e *attackEnv) string { return ".." }, ErrMalformed, 0},
		{"five segments (JWE)", func(e *attackEnv) string { return sign(e.t, e.rs, e.claims, nil) + ".a.b" }, ErrMalformed, 0},
		{"JSON serialization", func(e *attackEnv) string {
			tok := strings.Split(sign(e.t, e.rs, e.claims, nil), ".")
			return `{"payload":"` + tok[1] + `","protected":"` + tok[0] + `","signature":"` + tok[2] + `"}`
		}, ErrMalformed, 0},
		{"padded base64", func(e *attackEnv) string {
			tok := strings.Split(sign(e.t, e.rs, e.claims, nil), ".")
			return tok[0] + "=." + tok[1] + "." + tok[2]
		}, ErrMalformed, 0},
		{"newline in token", func(e *attackEnv) string {
			tok := sign(e.t, e.rs, e.claims, nil)
			return tok[:10] + "\n" + tok[10:]
		}, ErrMalformed, 0},
		{"signature stripped", func(e *attackEnv) string {
			tok := sign(e.t, e.rs, e.claims, nil)
			return tok[:strings.LastIndexByte(tok, '.')+1]
		}, ErrInvalidSignature, 0},
		{"payload swapped", func(e *attackEnv) string {
			good := strings.Split(sign(e.t, e.rs, e.claims, nil), ".")
			evil := strings.Split(sign(e.t, e.rs, with(e.claims, "scope", "admin"), nil), ".")
			return good[0] + "." + evil[1] + "." + good[2]
		}, ErrInvalidSignature, 0},
		{"ES256 signature one byte short", func(e *attackEnv) string {
			tok := strings.Split(sign(e.t, e.es, e.claims, nil), ".")
			sig, _ := b64.DecodeString(tok[2])
			return tok[0] + "." + tok[1] + "." + b64u(sig[1:])
		}, ErrInvalidSignature, 0},
		{"ES256 signature r=s=0", func(e *attackEnv) string {
			tok := strings.Split(sign(e.t, e.es, e.claims, nil), ".")
			return tok[0] + "." + tok[1] + "." + b64u(make([]byte, 64))
		}, ErrInvalidSignature, 0},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			removed := newTestKey(t, "ES384")
			f := newFakeIssuer(t, rs, ps, es, removed)
			f.set(func(f *fakeIssuer) {
				f.feed = RevocationFeed{
					RevokedJTIs: map[string]int64{"revoked-jti": clk.Now().Add(time.Hour).Unix()},
					// The cutoff is the time the rows run at.
					SubjectCutoffs: map[string]int64{"fired-user": clk.Now().Add(2 * DefaultMinRefreshInterval).Unix()},
				}
			})
			v := newTestVerifier(t, f, clk, WithDenylist(true))
			// Remove a key and make the verifier refetch (the way a real
			// refresh would), so its tokens are checked against a set
			// without it.
			f.publish(rs, ps, es)
			clk.Advance(DefaultMinRefreshInterval)
			if _, err := v.Verify(t.Context(), sign(t, newTestKey(t, "ES256"), f.claims(clk.Now()), nil)); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("refetch: Verify = %v, want ErrUnknownKey", err)
			}
			if got := v.Stats().Keys; got != 3 {
				t.Fatalf("after removal Stats().Keys = %d, want 3", got)
			}
			clk.Advance(DefaultMinRefreshInterval)

			e := &attackEnv{t: t, f: f, v: v, clk: clk, rs: rs, ps: ps, es: es, claims: f.claims(clk.Now()), removed: removed}
			tok := tc.token(e)
			before := f.jwksRequests.Load()
			cl, err := v.Verify(t.Context(), tok)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			t.Logf("Verify: %v", err)
			if cl != nil {
				t.Errorf("Verify returned claims with error %v", err)
			}
			if got := f.jwksRequests.Load() - before; got != tc.fetches {
				t.Errorf("JWKS requests = %d, want %d", got, tc.fetches)
			}
			if len(tok) > 20 && strings.Contains(err.Error(), tok[len(tok)-20:]) {
				t.Errorf("error %q contains the token", err)
			}

			// The same token through the middleware: 401 invalid_token,
			// with nothing about which check failed.
			h := HTTPMiddleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				t.Error("handler reached")
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("middleware status = %d, want 401", rec.Code)
			}
			if got, want := rec.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token", error_description="the access token is invalid"`; got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}
}

func TestVerifier_Verify_Valid(t *testing.T) {
	keys := []*testKey{newTestKey(t, "RS256"), newTestKey(t, "PS256"), newTestKey(t, "ES256"),
		newTestKey(t, "ES384"), newTestKey(t, "ES512"), newTestKey(t, "EdDSA")}
	clk := newFakeClock()
	f := newFakeIssuer(t, keys...)
	v := newTestVerifier(t, f, clk, WithAudience("other"))
	now := clk.Now()
	for _, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			c := f.claims(now)
			c["aud"] = []string{"x", "other"}
			c["nbf"] = now.Unix()
			c["tenant"] = "acme"
			c["n"] = 12345678901234567
			cl, err := v.Verify(t.Context(), sign(t, k, c, map[string]any{"typ": "application/AT+JWT"}))
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			want := &Claims{Issuer: f.URL(), Subject: "user-1", Audience: []string{"x", "other"},
				Expiry: now.Add(5 * time.Minute), IssuedAt: now, NotBefore: now,
				JWTID: "jti-1", ClientID: "client-1", Scope: "read write"}
			got := *cl
			got.raw = nil
			if !reflect.DeepEqual(*want, got) {
				t.Errorf("claims = %+v\nwant %+v", got, *want)
			}
			if got, ok := cl.Get("tenant"); !ok || got != "acme" {
				t.Errorf(`Get("tenant") = %v, %v`, got, ok)
			}
			if got, _ := cl.Get("n"); got.(interface{ String() string }).String() != "12345678901234567" {
				t.Errorf(`Get("n") = %v, want exact`, got)
			}
			if !cl.HasScope("write") || cl.HasScope("wri") || cl.HasScope("") {
				t.Errorf("HasScope wrong for %q", cl.Scope)
			}
			if got := cl.Scopes(); !reflect.DeepEqual(got, []string{"read", "write"}) {
				t.Errorf("Scopes() = %q, want [read write]", got)
			}
			raw := cl.Raw()
			raw["sub"] = "changed"
			if cl.Subject != "user-1" {
				t.Error("Raw aliases claims")
			}
		})
	}
}

// TestVerifier_Verify_Leeway checks the exact boundaries.
func TestVerifier_Verify_Leeway(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	v := newTestVerifier(t, f, clk, WithLeeway(10*time.Second))
	now := clk.Now()
	tests := []struct {
		name  string
		claim string
		at    time.Duration
		want  error
	}{
		{"exp at now-leeway", "exp", -10 * time.Second, nil},
		{"exp at now-leeway-1s", "exp", -11 * time.Second, ErrExpired},
		{"nbf at now+leeway", "nbf", 10 * time.Second, nil},
		{"nbf at now+leeway+1s", "nbf", 11 * time.Second, ErrNotYetValid},
		{"iat at now+leeway", "iat", 10 * time.Second, nil},
		{"iat at now+leeway+1s", "iat", 11 * time.Second, ErrIssuedInFuture},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.claims(now)
			c[tc.claim] = now.Add(tc.at).Unix()
			if _, err := v.Verify(t.Context(), sign(t, k, c, nil)); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewVerifier_Options(t *testing.T) {
	k := newTestKey(t, "ES256")
	f := newFakeIssuer(t, k)
	tests := []struct {
		name string
		opts []Option
	}{
		{"no audience", nil},
		{"negative leeway", []Option{WithAudience("api"), WithLeeway(-time.Second)}},
		{"leeway over a minute", []Option{WithAudience("api"), WithLeeway(61 * time.Second)}},
		{"HS256 allowed", []Option{WithAudience("api"), WithAllowedAlgorithms("RS256", "HS256")}},
		{"none allowed", []Option{WithAudience("api"), WithAllowedAlgorithms("none")}},
		{"no algorithms", []Option{WithAudience("api"), WithAllowedAlgorithms()}},
		{"zero min interval", []Option{WithAudience("api"), WithMinRefreshInterval(0)}},
		{"plain http jwks off loopback", []Option{WithAudience("api"), WithJWKSURL("http://example.com/jwks.json")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := NewVerifier(t.Context(), f.URL(), tc.opts...); err == nil {
				_ = v.Close()
				t.Fatal("NewVerifier succeeded")
			}
		})
	}
}

func TestNewVerifier_Discovery(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()

	t.Run("RFC 8414", func(t *testing.T) {
		f := newFakeIssuer(t, k)
		v := newTestVerifier(t, f, clk)
		if got := v.Stats().JWKS.URL; got != f.URL()+"/.well-known/jwks.json" {
			t.Errorf("JWKS URL = %q", got)
		}
		if got := f.metaRequests.Load(); got != 1 {
			t.Errorf("metadata requests = %d, want 1", got)
		}
	})
	t.Run("falls back to openid-configuration", func(t *testing.T) {
		f := newFakeIssuer(t, k)
		f.set(func(f *fakeIssuer) { f.noDiscover = true })
		newTestVerifier(t, f, clk)
		if got := f.metaRequests.Load(); got != 2 {
			t.Errorf("metadata requests = %d, want 2", got)
		}
	})
	t.Run("issuer mismatch", func(t *testing.T) {
		f := newFakeIssuer(t, k)
		if _, err := NewVerifier(t.Context(), f.URL()+"/", WithAudience("api")); err == nil {
			t.Fatal("NewVerifier accepted metadata for another issuer")
		}
	})
	t.Run("WithJWKSURL skips discovery", func(t *testing.T) {
		f := newFakeIssuer(t, k)
		newTestVerifier(t, f, clk, WithJWKSURL(f.URL()+"/.well-known/jwks.json"))
		if got := f.metaRequests.Load(); got != 0 {
			t.Errorf("metadata requests = %d, want 0", got)
		}
	})
	t.Run("initial fetch fails", func(t *testing.T) {
		f := newFakeIssuer(t, k)
		f.set(func(f *fakeIssuer) { f.jwksStatus = http.StatusInternalServerError })
		if _, err := NewVerifier(t.Context(), f.URL(), WithAudience("api")); err == nil {
			t.Fatal("NewVerifier succeeded without keys")
		}
	})
	t.Run("initial denylist fetch fails", func(t *testing.T) {
		f := newFakeIssuer(t, k)
		if _, err := NewVerifier(t.Context(), f.URL(), WithAudience("api"), WithDenylist(true),
			WithRevocationFeedURL(f.URL()+"/missing")); err == nil {
			t.Fatal("NewVerifier succeeded without the denylist")
		}
	})
}

// TestVerifier_UnknownKID_OneFetch: 100 concurrent requests with the same
// unknown kid cause exactly one JWKS fetch, and a kid that fails the
// sanity check causes none.
func TestVerifier_UnknownKID_OneFetch(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	v := newTestVerifier(t, f, clk)
	clk.Advance(DefaultMinRefreshInterval)
	tok := sign(t, newTestKey(t, "ES256"), f.claims(clk.Now()), nil)
	bad := sign(t, k, f.claims(clk.Now()), map[string]any{"kid": "../../etc/passwd"})

	before := f.jwksRequests.Load()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() {
			<-start
			_, errs[i] = v.Verify(t.Context(), tok)
			if _, err := v.Verify(t.Context(), bad); !errors.Is(err, ErrMalformed) {
				t.Errorf("path kid: Verify = %v, want ErrMalformed", err)
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("request %d: Verify = %v, want ErrUnknownKey", i, err)
		}
	}
	if got := f.jwksRequests.Load() - before; got != 1 {
		t.Errorf("JWKS requests = %d, want 1", got)
	}
}

// TestVerifier_NewKeyPickedUp: a token signed with a key published after
// the verifier started verifies after the unknown-kid refetch.
func TestVerifier_NewKeyPickedUp(t *testing.T) {
	old, next := newTestKey(t, "ES256"), newTestKey(t, "EdDSA")
	clk := newFakeClock()
	f := newFakeIssuer(t, old)
	v := newTestVerifier(t, f, clk)
	f.publish(old, next)
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := v.Verify(t.Context(), sign(t, next, f.claims(clk.Now()), nil)); err != nil {
		t.Fatalf("Verify with new key = %v", err)
	}
	if _, err := v.Verify(t.Context(), sign(t, old, f.claims(clk.Now()), nil)); err != nil {
		t.Fatalf("Verify with old key = %v", err)
	}
}

// TestVerifier_SameKIDTwoAlgs covers J18: the token's alg picks among the
// keys published under one kid; the signature must match that pair.
func TestVerifier_SameKIDTwoAlgs(t *testing.T) {
	rs := newTestKey(t, "RS256")
	ps := &testKey{kid: rs.kid, alg: "PS256", priv: rs.priv}
	pub, err := rs.pub.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Set("alg", "PS256"); err != nil {
		t.Fatal(err)
	}
	ps.pub = pub
	clk := newFakeClock()
	f := newFakeIssuer(t, rs, ps)
	v := newTestVerifier(t, f, clk)
	for _, k := range []*testKey{rs, ps} {
		if _, err := v.Verify(t.Context(), sign(t, k, f.claims(clk.Now()), nil)); err != nil {
			t.Errorf("%s: Verify = %v", k.alg, err)
		}
	}
	// An RS256 signature presented as PS256 fails the signature check.
	hdr := mustJSON(t, map[string]any{"alg": "PS256", "kid": rs.kid, "typ": "at+jwt"})
	if _, err := v.Verify(t.Context(), signRaw(t, rs, "RS256", hdr, mustJSON(t, f.claims(clk.Now())))); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("RS256 signature as PS256: Verify = %v, want ErrInvalidSignature", err)
	}
}

// nonCanonical re-encodes the last character of a base64url segment with
// its unused low bits set, so a lenient decoder returns the same bytes. It
// reports false when the segment has no unused bits (length a multiple of 4).
func nonCanonical(seg string) (string, bool) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var unused uint
	switch len(seg) % 4 {
	case 2:
		unused = 4
	case 3:
		unused = 2
	default:
		return seg, false
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|(1<<unused-1)]), true
}

// padded returns the JSON of m with a "pad" member sized so that the JSON
// length is rem modulo 3 (1: four unused bits in base64url, 2: two).
func padded(t *testing.T, m map[string]any, rem int) []byte {
	t.Helper()
	for n := 0; ; n++ {
		m["pad"] = strings.Repeat("x", n)
		if b := mustJSON(t, m); len(b)%3 == rem {
			return b
		}
	}
}

// TestVerifier_NonCanonicalBase64 (issue 9 item 8): every part of a token
// has exactly one accepted encoding. A header or payload whose last
// character carries non-zero unused bits is refused even when the issuer
// signed exactly that text, and so is a signature re-encoded that way.
func TestVerifier_NonCanonicalBase64(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	v := newTestVerifier(t, f, clk)
	lenient := base64.RawURLEncoding
	signSegs := func(hdr, payload string) string {
		s, err := jws.NewSigner(jwa.ES256)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.Sign([]byte(hdr+"."+payload), k.priv)
		if err != nil {
			t.Fatal(err)
		}
		return hdr + "." + payload + "." + b64u(sig)
	}
	hdrMap := func() map[string]any { return map[string]any{"alg": "ES256", "kid": k.kid, "typ": "at+jwt"} }
	for _, rem := range []int{1, 2} {
		hdr := b64u(padded(t, hdrMap(), rem))
		payload := b64u(padded(t, f.claims(clk.Now()), rem))
		good := signSegs(hdr, payload)
		if _, err := v.Verify(t.Context(), good); err != nil {
			t.Fatalf("canonical token (rem %d): Verify = %v", rem, err)
		}
		parts := strings.Split(good, ".")
		cases := map[string]string{}
		if h, ok := nonCanonical(hdr); ok {
			cases["header"] = signSegs(h, payload)
		}
		if p, ok := nonCanonical(payload); ok {
			cases["payload"] = signSegs(hdr, p)
		}
		if s, ok := nonCanonical(parts[2]); ok {
			cases["signature"] = parts[0] + "." + parts[1] + "." + s
		}
		// An ES256 signature is 64 bytes: always four unused bits.
		if len(cases) != 3 {
			t.Fatalf("rem %d: %d parts with unused bits, want 3", rem, len(cases))
		}
		for part, tok := range cases {
			i := map[string]int{"header": 0, "payload": 1, "signature": 2}[part]
			unused := map[int]int{2: 4, 3: 2}[len(parts[i])%4]
			t.Run(fmt.Sprintf("%s, %d unused bits", part, unused), func(t *testing.T) {
				a, errA := lenient.DecodeString(strings.Split(tok, ".")[i])
				b, errB := lenient.DecodeString(parts[i])
				if errA != nil || errB != nil || !bytes.Equal(a, b) || tok == good {
					t.Fatalf("test token is not a re-encoding of the same bytes")
				}
				if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrMalformed) {
					t.Errorf("Verify = %v, want ErrMalformed", err)
				}
			})
		}
	}
}
