package jwks

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// dpopEnv is a verifier that takes DPoP, a client key, and tokens: one bound
// to the key, one bound to another key, and a bearer token.
type dpopEnv struct {
	clk     *fakeClock
	v       *Verifier
	key     *dpopKey
	bound   string // cnf.jkt = key's thumbprint
	other   string // bound to another key
	bearer  string
	issuerK *testKey
	issuer  *fakeIssuer
	checker *DPoPChecker
}

func newDPoPEnv(t *testing.T, opts ...DPoPOption) *dpopEnv {
	t.Helper()
	e := &dpopEnv{clk: newFakeClock()}
	e.issuerK = newTestKey(t, "ES256")
	e.issuer = newFakeIssuer(t, e.issuerK)
	e.checker = newTestChecker(t, e.clk, opts...)
	e.v = newTestVerifier(t, e.issuer, e.clk, WithDPoP(e.checker))
	e.key = newDPoPKey(t, "ES256")
	e.bound = e.token(t, e.key.jkt)
	e.other = e.token(t, newDPoPKey(t, "ES256").jkt)
	e.bearer = e.token(t, "")
	return e
}

// token signs an access token for the env's issuer, bound to jkt when set.
func (e *dpopEnv) token(t *testing.T, jkt string) string {
	c := e.issuer.claims(e.clk.Now())
	if jkt != "" {
		c["cnf"] = map[string]any{"jkt": jkt}
	}
	return sign(t, e.issuerK, c, nil)
}

// proof is a fresh proof by the env's key for method and URL, with the ath
// of token (when set); mod edits claims and header.
func (e *dpopEnv) proof(t *testing.T, method, url, token string, mod func(cl, hdr map[string]any)) string {
	cl, hdr := e.key.claims(e.clk.Now()), map[string]any{}
	cl["htm"], cl["htu"] = method, url
	if token != "" {
		cl["ath"] = athOf(token)
	}
	if mod != nil {
		mod(cl, hdr)
	}
	return e.key.proof(t, cl, hdr)
}

func dpopRequest(method, url, auth string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, url, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// TestVerify_RefusesBoundToken: Verify (the bearer path) refuses a token
// carrying cnf, whether or not DPoP is configured: the downgrade.
func TestVerify_RefusesBoundToken(t *testing.T) {
	e := newDPoPEnv(t)
	plain := newTestVerifier(t, e.issuer, e.clk)
	for _, v := range []*Verifier{e.v, plain} {
		if _, err := v.Verify(t.Context(), e.bound); !errors.Is(err, ErrDPoPBinding) {
			t.Errorf("Verify(bound) = %v, want ErrDPoPBinding", err)
		}
		c := e.issuer.claims(e.clk.Now())
		c["cnf"] = map[string]any{"x5t#S256": "abc"} // mTLS-bound (RFC 8705): not a bearer token either
		if _, err := v.Verify(t.Context(), sign(t, e.issuerK, c, nil)); !errors.Is(err, ErrDPoPBinding) {
			t.Errorf("Verify(mTLS-bound) = %v, want ErrDPoPBinding", err)
		}
		if _, err := v.Verify(t.Context(), e.bearer); err != nil {
			t.Errorf("Verify(bearer) = %v", err)
		}
	}
}

// TestVerifyRequest_DPoP: a bound token with its proof passes, and the
// claims name the key.
func TestVerifyRequest_DPoP(t *testing.T) {
	e := newDPoPEnv(t)
	r := dpopRequest("GET", dpopURL, "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
	cl, err := e.v.VerifyRequest(t.Context(), r)
	if err != nil {
		t.Fatalf("VerifyRequest: %v", err)
	}
	if cl.JKT() != e.key.jkt || cl.Subject != "user-1" {
		t.Errorf("claims jkt %q sub %q", cl.JKT(), cl.Subject)
	}
	// A bearer token on the same verifier still works.
	if _, err := e.v.VerifyRequest(t.Context(), dpopRequest("GET", dpopURL, "Bearer "+e.bearer)); err != nil {
		t.Errorf("bearer: %v", err)
	}
	// Without WithDPoP the DPoP scheme is not ours: no credentials.
	plain := newTestVerifier(t, e.issuer, e.clk)
	r = dpopRequest("GET", dpopURL, "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
	if _, err := plain.VerifyRequest(t.Context(), r); !errors.Is(err, ErrNoToken) {
		t.Errorf("DPoP without WithDPoP: %v, want ErrNoToken", err)
	}
}

// TestVerifyRequest_Origin: behind a proxy that terminates TLS, the
// configured origin is what htu must name.
func TestVerifyRequest_Origin(t *testing.T) {
	e := newDPoPEnv(t, WithDPoPOrigin("https://api.example.com"))
	internal := "http://10.0.0.7:8080/invoices"
	ok := dpopRequest("GET", internal, "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
	if _, err := e.v.VerifyRequest(t.Context(), ok); err != nil {
		t.Fatalf("proof for the public URL: %v", err)
	}
	bad := dpopRequest("GET", internal, "DPoP "+e.bound, e.proof(t, "GET", internal, e.bound, nil))
	if _, err := e.v.VerifyRequest(t.Context(), bad); !errors.Is(err, ErrDPoPProof) {
		t.Fatalf("proof for the internal URL: %v, want ErrDPoPProof", err)
	}
}

// TestHTTPMiddleware_DPoP is the attack table of the net/http middleware:
// each row a request RFC 9449 says to refuse (or accept), with the status,
// the WWW-Authenticate answer and the error the refusal wraps.
func TestHTTPMiddleware_DPoP(t *testing.T) {
	e := newDPoPEnv(t)
	nonces := NewRotatingNonces(time.Minute, e.clk.Now)
	en := newDPoPEnv(t, WithDPoPNonces(nonces))
	for _, tc := range dpopMiddlewareCases(t, e, en, nonces) {
		t.Run(tc.name, func(t *testing.T) {
			v := e.v
			if tc.nonce {
				v = en.v
			}
			h := HTTPMiddleware(v, RequireScopes("read"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, _ := ClaimsFromContext(r.Context())
				_, _ = w.Write([]byte("sub=" + c.Subject + " jkt=" + c.JKT()))
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req())
			checkDPoPResponse(t, rec, tc)
			var ref *Refusal
			if tc.status != 200 {
				_, ref = NewAuthenticator(v, RequireScopes("read")).Authenticate(tc.req())
			}
			if tc.err != nil && (ref == nil || !errors.Is(ref, tc.err)) {
				t.Errorf("refusal %v does not wrap %v", ref, tc.err)
			}
		})
	}
}

type dpopMiddlewareCase struct {
	name   string
	nonce  bool                 // use the verifier that requires nonces
	req    func() *http.Request // called afresh: proofs are single use
	status int
	auth   string // WWW-Authenticate
	body   string // prefix of the body
	err    error  // what the refusal wraps
	nonceH bool   // a DPoP-Nonce header is expected
}

const dpopAlgs = `algs="RS256 PS256 ES256 ES384 ES512 EdDSA Ed25519"`

func dpopMiddlewareCases(t *testing.T, e, en *dpopEnv, nonces *RotatingNonces) []dpopMiddlewareCase {
	const (
		invalidProof = `DPoP error="invalid_dpop_proof", error_description="the DPoP proof is invalid", ` + dpopAlgs
		invalidDPoP  = `DPoP error="invalid_token", error_description="the access token is invalid", ` + dpopAlgs
		invalidBear  = `Bearer error="invalid_token", error_description="the access token is invalid", DPoP ` + dpopAlgs
	)
	good := func(mod func(cl, hdr map[string]any)) func() *http.Request {
		return func() *http.Request {
			return dpopRequest("GET", dpopURL, "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, mod))
		}
	}
	replayed := e.proof(t, "GET", dpopURL, e.bound, nil)
	ecPriv := e.key.priv.(*ecdsa.PrivateKey)
	withPrivate := func(_, hdr map[string]any) {
		j := map[string]any{"d": b64u(ecPriv.D.FillBytes(make([]byte, 32)))}
		for n, v := range e.key.jwk {
			j[n] = v
		}
		hdr["jwk"] = j
	}
	readOnlyMissing := e.issuer.claims(e.clk.Now())
	readOnlyMissing["scope"] = "write"
	readOnlyMissing["cnf"] = map[string]any{"jkt": e.key.jkt}
	noScope := sign(t, e.issuerK, readOnlyMissing, nil)

	return []dpopMiddlewareCase{
		{name: "valid DPoP", req: good(nil), status: 200, body: "sub=user-1 jkt=" + e.key.jkt},
		{name: "valid DPoP, scheme in lower case", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "dpop "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
		}, status: 200, body: "sub=user-1"},
		{name: "valid bearer beside DPoP", req: func() *http.Request { return dpopRequest("GET", dpopURL, "Bearer "+e.bearer) },
			status: 200, body: "sub=user-1 jkt="},
		{name: "no credentials: both challenges", req: func() *http.Request { return dpopRequest("GET", dpopURL, "") },
			status: 401, auth: `Bearer, DPoP ` + dpopAlgs, body: `{"error":"unauthorized"`, err: ErrNoToken},
		{name: "proof replay", req: func() *http.Request { return dpopRequest("GET", dpopURL, "DPoP "+e.bound, replayed) },
			status: 200, body: "sub=user-1"},
		{name: "proof replay, second time", req: func() *http.Request { return dpopRequest("GET", dpopURL, "DPoP "+e.bound, replayed) },
			status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPReplay},
		{name: "wrong htm", req: func() *http.Request {
			return dpopRequest("DELETE", dpopURL, "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
		}, status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "wrong htu", req: func() *http.Request {
			return dpopRequest("GET", "https://api.example.com/admin", "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
		}, status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "htu https, request plain http", req: func() *http.Request {
			return dpopRequest("GET", "http://api.example.com/invoices", "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
		}, status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "stale iat", req: good(func(cl, _ map[string]any) { cl["iat"] = e.clk.Now().Add(-2 * time.Minute).Unix() }),
			status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "proof carrying a private key", req: good(withPrivate),
			status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "alg none", req: func() *http.Request {
			hdr := b64u(mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": e.key.jwk}))
			cl := e.key.claims(e.clk.Now())
			cl["ath"] = athOf(e.bound)
			return dpopRequest("GET", dpopURL, "DPoP "+e.bound, hdr+"."+b64u(mustJSON(t, cl))+".")
		}, status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "alg HS256 keyed with the public key", req: func() *http.Request {
			hdr := b64u(mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": e.key.jwk}))
			cl := e.key.claims(e.clk.Now())
			cl["ath"] = athOf(e.bound)
			input := hdr + "." + b64u(mustJSON(t, cl))
			mac := hmac.New(sha256.New, mustJSON(t, e.key.jwk))
			mac.Write([]byte(input))
			return dpopRequest("GET", dpopURL, "DPoP "+e.bound, input+"."+b64u(mac.Sum(nil)))
		},
			status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "ath of another token", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.other, nil))
		}, status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "no ath", req: good(func(cl, _ map[string]any) { delete(cl, "ath") }),
			status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "no DPoP header", req: func() *http.Request { return dpopRequest("GET", dpopURL, "DPoP "+e.bound) },
			status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "two DPoP headers", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "DPoP "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil), e.proof(t, "GET", dpopURL, e.bound, nil))
		}, status: 401, auth: invalidProof, body: `{"error":"invalid_dpop_proof"`, err: ErrDPoPProof},
		{name: "mismatched jkt: token bound to another key", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "DPoP "+e.other, e.proof(t, "GET", dpopURL, e.other, nil))
		}, status: 401, auth: invalidDPoP, body: `{"error":"invalid_token"`, err: ErrDPoPBinding},
		{name: "unbound token presented as DPoP", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "DPoP "+e.bearer, e.proof(t, "GET", dpopURL, e.bearer, nil))
		}, status: 401, auth: invalidDPoP, body: `{"error":"invalid_token"`, err: ErrDPoPBinding},
		{name: "DPoP token as Bearer", req: func() *http.Request { return dpopRequest("GET", dpopURL, "Bearer "+e.bound) },
			status: 401, auth: invalidBear, body: `{"error":"invalid_token"`, err: ErrDPoPBinding},
		{name: "DPoP token as Bearer, with its proof", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "Bearer "+e.bound, e.proof(t, "GET", dpopURL, e.bound, nil))
		}, status: 401, auth: invalidBear, body: `{"error":"invalid_token"`, err: ErrDPoPBinding},
		{name: "forged token with a good proof", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "DPoP "+e.bound+"x", e.proof(t, "GET", dpopURL, e.bound+"x", nil))
		}, status: 401, auth: invalidDPoP, body: `{"error":"invalid_token"`, err: ErrMalformed},
		{name: "missing scope, DPoP", req: func() *http.Request {
			return dpopRequest("GET", dpopURL, "DPoP "+noScope, e.proof(t, "GET", dpopURL, noScope, nil))
		}, status: 403, auth: `DPoP error="insufficient_scope", error_description="the access token lacks a required scope", scope="read", ` + dpopAlgs,
			body: `{"error":"insufficient_scope"`},
		{name: "nonce required, none sent", nonce: true, req: func() *http.Request {
			tok := en.token(t, en.key.jkt)
			return dpopRequest("GET", dpopURL, "DPoP "+tok, en.proof(t, "GET", dpopURL, tok, nil))
		}, status: 401, auth: `DPoP error="use_dpop_nonce", error_description="the resource server requires a nonce in the DPoP proof", ` + dpopAlgs,
			body: `{"error":"use_dpop_nonce"`, err: ErrDPoPNonce, nonceH: true},
		{name: "nonce required, current nonce", nonce: true, req: func() *http.Request {
			tok := en.token(t, en.key.jkt)
			return dpopRequest("GET", dpopURL, "DPoP "+tok, en.proof(t, "GET", dpopURL, tok, func(cl, _ map[string]any) {
				cl["nonce"] = nonces.Current()
			}))
		}, status: 200, body: "sub=user-1"},
	}
}

func checkDPoPResponse(t *testing.T, rec *httptest.ResponseRecorder, tc dpopMiddlewareCase) {
	t.Helper()
	if rec.Code != tc.status {
		t.Errorf("status = %d, want %d (body %s)", rec.Code, tc.status, rec.Body)
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != tc.auth {
		t.Errorf("WWW-Authenticate = %q\n                     want %q", got, tc.auth)
	}
	if got := rec.Body.String(); !strings.HasPrefix(got, tc.body) {
		t.Errorf("body = %q, want prefix %q", got, tc.body)
	}
	if got := rec.Header().Get("DPoP-Nonce"); (got != "") != tc.nonceH {
		t.Errorf("DPoP-Nonce = %q, want one: %v", got, tc.nonceH)
	}
}
