//go:build pkcs11

package authority_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/keys/custody"
	"github.com/signet-auth/signet/keys/custody/pkcs11"
	"github.com/signet-auth/signet/keys/custody/pkcs11/softhsmtest"
)

func tokenCustody(c custody.Custody, algs ...string) map[string]custody.Custody {
	m := map[string]custody.Custody{}
	for _, a := range algs {
		m[a] = c
	}
	return m
}

// TestPKCS11_TokenEndpoint: with the keys in a SoftHSM2 token, the token
// endpoint signs through the token; every token verifies against the
// published JWKS with the algorithm taken from the key, before and after a
// rotation through the admin API.
func TestPKCS11_TokenEndpoint(t *testing.T) {
	algs := []string{"RS256", "PS256", "ES256"}
	hsm := softhsmtest.Open(t, "signet-authority")
	e := newEnv(t, envOptions{algs: algs, custody: tokenCustody(hsm, algs...)})
	verify := func(tok string) string {
		t.Helper()
		resp, err := http.Get(e.issuer + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		set, err := jwk.Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
			t.Fatalf("token signed in the HSM does not verify: %v", err)
		}
		msg, _ := jws.Parse([]byte(tok))
		return msg.Signatures()[0].ProtectedHeaders().KeyID()
	}
	first := map[string]string{}
	for _, alg := range algs {
		secret := e.createClient(clients.Client{ID: "c-" + alg, Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
		first[alg] = verify(e.token("c-"+alg, secret, nil))
	}
	if status, _, body := e.admin(http.MethodPost, "/admin/keys/rotate?force=true", e.adminToken(), nil); status != http.StatusOK {
		t.Fatalf("rotate: %d %v", status, body)
	}
	for _, alg := range algs {
		secret := e.createClient(clients.Client{ID: "d-" + alg, Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
		if kid := verify(e.token("d-"+alg, secret, nil)); kid == first[alg] {
			t.Errorf("%s: after the rotation tokens still carry kid %s", alg, kid)
		}
	}
}

// BenchmarkClientCredentialsCustody is BenchmarkClientCredentials with the
// key sealed in the store (in memory) beside the key held in a SoftHSM2
// token, for RS256 and ES256: what a signature through PKCS#11 costs a
// whole token request.
//
//	go test -tags pkcs11 -run '^$' -bench ClientCredentialsCustody ./authority
func BenchmarkClientCredentialsCustody(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		for _, where := range []string{"store", "pkcs11"} {
			b.Run(where+"/"+alg, func(b *testing.B) {
				o := envOptions{algs: []string{alg}}
				if where == "pkcs11" {
					o.custody = tokenCustody(softhsmtest.Open(b, "signet-bench"), alg)
				}
				e := newEnv(b, o)
				secret := e.createClient(clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: alg})
				const body = "grant_type=client_credentials&scope=read"
				auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+secret))
				rd := strings.NewReader(body)
				req := httptest.NewRequest(http.MethodPost, "/oauth2/token", rd)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", auth)
				w := &discardWriter{h: http.Header{}}
				b.ReportAllocs()
				b.ResetTimer()
				done := reportCPU(b)
				for b.Loop() {
					rd.Reset(body)
					req.Body = io.NopCloser(rd)
					clear(w.h)
					w.status = 0
					e.srv.ServeHTTP(w, req)
					if w.status != http.StatusOK {
						b.Fatalf("status %d", w.status)
					}
				}
				done()
			})
		}
	}
}

// TestPKCS11_ModuleGone: when the token cannot be reached, the token
// endpoint answers 503 temporarily_unavailable (as a replica cut off from
// its store does; never a 500, never a token from another key) and the
// JWKS keeps being served.
func TestPKCS11_ModuleGone(t *testing.T) {
	cfg := softhsmtest.NewToken(t, "signet-gone")
	hsm, err := pkcs11.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{algs: []string{"ES256"}, custody: tokenCustody(hsm, "ES256")})
	secret := e.createClient(clients.Client{ID: "c", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: "ES256"})
	e.token("c", secret, nil)
	hsm.Close() // the module's sessions are gone
	for range 5 {
		status, h, body := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "c", secret)
		if status != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" || body["access_token"] != nil || h.Get("Retry-After") == "" {
			t.Fatalf("token with the module gone: %d %v %v, want 503 temporarily_unavailable, Retry-After and no token", status, h, body)
		}
	}
	// One line for the episode, not one per request, and no ERROR.
	logs := e.logs.String()
	if n := strings.Count(logs, `"condition":"signing_unavailable"`); n != 1 {
		t.Errorf("%d refusal lines for 5 refused requests, want 1 (once per episode):\n%s", n, logs)
	}
	if strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("an ERROR line for a refusal logged as an episode:\n%s", logs)
	}
	resp, err := http.Get(e.issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("JWKS with the module gone: %d, want 200", resp.StatusCode)
	}
}
