package authority_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage/bolt"
)

// dpopClient is a client's ES256 proof key, written with the standard
// library (not the checker's code); jkt is jwx's thumbprint of it.
type dpopClient struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]any
	jkt  string
	now  func() time.Time
	seq  atomic.Int64
}

func newDPoPClient(t testing.TB, now func() time.Time) *dpopClient {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
	enc := base64.RawURLEncoding.EncodeToString
	return &dpopClient{priv: priv, now: now, jkt: enc(tp), jwk: map[string]any{
		"kty": "EC", "crv": "P-256", "x": enc(priv.X.FillBytes(make([]byte, 32))), "y": enc(priv.Y.FillBytes(make([]byte, 32))),
	}}
}

// proof is a fresh proof for method and URL (with the ath of token when
// set); mod edits the claims and header before signing.
func (d *dpopClient) proof(t testing.TB, method, u, token string, mod func(cl, hdr map[string]any)) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	cl := map[string]any{"jti": fmt.Sprintf("p-%d-%d", time.Now().UnixNano(), d.seq.Add(1)), "htm": method, "htu": u, "iat": d.now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		cl["ath"] = enc(sum[:])
	}
	hdr := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": d.jwk}
	if mod != nil {
		mod(cl, hdr)
	}
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(cl)
	input := enc(h) + "." + enc(p)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, d.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

// dpopTokenRequest is a client_credentials request with the given DPoP
// header values.
func (e *env) dpopTokenRequest(id, secret string, form url.Values, proofs ...string) (int, http.Header, map[string]any) {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("grant_type", "client_credentials")
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return e.do(req)
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDPoP_ClientCredentials: a token request with a proof gets a DPoP
// token bound to the proof's key (token_type DPoP, cnf.jkt); without one,
// a bearer token as before; discovery lists the proof algorithms; a
// service's jwks verifier takes the bound token with a proof and refuses
// it as Bearer.
func TestDPoP_ClientCredentials(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	secret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"https://api.internal"}})
	client := newDPoPClient(t, e.clock.Now)

	status, hdr, body := e.dpopTokenRequest("svc", secret, nil, client.proof(t, "POST", e.issuer+"/oauth2/token", "", nil))
	if status != http.StatusOK || body["token_type"] != "DPoP" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("token with proof = %d %v", status, body)
	}
	tok := body["access_token"].(string)
	cnf, _ := claimsOf(t, tok)["cnf"].(map[string]any)
	if cnf["jkt"] != client.jkt {
		t.Fatalf("cnf = %v, want jkt %s", cnf, client.jkt)
	}
	// Introspection reports the binding (RFC 9449 §6.2).
	if in := e.introspect(tok); in["active"] != true || in["token_type"] != "DPoP" || fmt.Sprint(in["cnf"]) != "map[jkt:"+client.jkt+"]" {
		t.Errorf("introspect = %v", in)
	}
	status, _, body = e.dpopTokenRequest("svc", secret, nil)
	if status != http.StatusOK || body["token_type"] != "Bearer" || claimsOf(t, body["access_token"].(string))["cnf"] != nil {
		t.Fatalf("token without proof = %d %v", status, body)
	}
	if in := e.introspect(body["access_token"].(string)); in["token_type"] != "Bearer" || in["cnf"] != nil {
		t.Errorf("introspect bearer = %v", in)
	}

	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/.well-known/openid-configuration", nil)
	_, _, md := e.do(req)
	if got, _ := json.Marshal(md["dpop_signing_alg_values_supported"]); string(got) != `["RS256","PS256","ES256","ES384","ES512","EdDSA","Ed25519"]` {
		t.Errorf("dpop_signing_alg_values_supported = %s", got)
	}

	// A service verifying with the jwks module on Signet's real clock.
	checker, err := jwks.NewDPoPChecker(jwks.WithDPoPClock(e.clock.Now), jwks.WithDPoPOrigin("https://api.internal"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwks.NewVerifier(t.Context(), e.issuer, jwks.WithAudience("https://api.internal"), jwks.WithDPoP(checker), jwks.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	api := "https://api.internal/things"
	r, _ := http.NewRequest(http.MethodGet, api, nil)
	r.Header.Set("Authorization", "DPoP "+tok)
	r.Header.Set("DPoP", client.proof(t, "GET", api, tok, nil))
	if cl, err := v.VerifyRequest(t.Context(), r); err != nil || cl.JKT() != client.jkt {
		t.Fatalf("service VerifyRequest = %v, %v", cl, err)
	}
	if _, err := v.Verify(t.Context(), tok); err == nil {
		t.Fatal("service Verify took the bound token as a bearer token")
	}
}

// TestDPoP_TokenEndpointAttacks: each row a proof the token endpoint must
// refuse with 400 invalid_dpop_proof, issuing nothing.
func TestDPoP_TokenEndpointAttacks(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	secret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"https://api.internal"}})
	client := newDPoPClient(t, e.clock.Now)
	other := newDPoPClient(t, e.clock.Now)
	tokenURL := e.issuer + "/oauth2/token"
	enc := base64.RawURLEncoding.EncodeToString
	replayed := client.proof(t, "POST", tokenURL, "", nil)
	if status, _, body := e.dpopTokenRequest("svc", secret, nil, replayed); status != http.StatusOK {
		t.Fatalf("first use = %d %v", status, body)
	}
	with := func(mod func(cl, hdr map[string]any)) func() []string {
		return func() []string { return []string{client.proof(t, "POST", tokenURL, "", mod)} }
	}
	for _, tc := range []struct {
		name   string
		proofs func() []string
	}{
		{"proof replay", func() []string { return []string{replayed} }},
		{"wrong htm", with(func(cl, _ map[string]any) { cl["htm"] = "GET" })},
		{"wrong htu", with(func(cl, _ map[string]any) { cl["htu"] = e.issuer + "/oauth2/introspect" })},
		{"htu of another server", with(func(cl, _ map[string]any) { cl["htu"] = "https://evil.example/oauth2/token" })},
		{"stale iat", with(func(cl, _ map[string]any) { cl["iat"] = e.clock.Now().Add(-2 * time.Minute).Unix() })},
		{"iat in the future", with(func(cl, _ map[string]any) { cl["iat"] = e.clock.Now().Add(2 * time.Minute).Unix() })},
		{"proof carrying a private key", with(func(_, hdr map[string]any) {
			j := map[string]any{"d": enc(client.priv.D.FillBytes(make([]byte, 32)))}
			for k, v := range client.jwk {
				j[k] = v
			}
			hdr["jwk"] = j
		})},
		{"jwk of another key", with(func(_, hdr map[string]any) { hdr["jwk"] = other.jwk })},
		{"typ JWT", with(func(_, hdr map[string]any) { hdr["typ"] = "JWT" })},
		{"alg none", func() []string {
			h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": client.jwk})
			p, _ := json.Marshal(map[string]any{"jti": "none-1", "htm": "POST", "htu": tokenURL, "iat": e.clock.Now().Unix()})
			return []string{enc(h) + "." + enc(p) + "."}
		}},
		{"alg HS256 keyed with the public key", func() []string {
			h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": client.jwk})
			p, _ := json.Marshal(map[string]any{"jti": "hs-1", "htm": "POST", "htu": tokenURL, "iat": e.clock.Now().Unix()})
			key, _ := json.Marshal(client.jwk)
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(enc(h) + "." + enc(p)))
			return []string{enc(h) + "." + enc(p) + "." + enc(mac.Sum(nil))}
		}},
		{"two DPoP headers", func() []string {
			return []string{client.proof(t, "POST", tokenURL, "", nil), client.proof(t, "POST", tokenURL, "", nil)}
		}},
		{"not a JWT", func() []string { return []string{"garbage"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := e.dpopTokenRequest("svc", secret, nil, tc.proofs()...)
			if status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" || body["access_token"] != nil {
				t.Fatalf("= %d %v, want 400 invalid_dpop_proof", status, body)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
			}
		})
	}
}

// TestDPoP_AdminAPI: Signet's own protected endpoints (the admin API here;
// userinfo shares the check) take a DPoP-bound token with the DPoP scheme
// and a proof for that request, and refuse it as Bearer, with a replayed
// proof, or with a proof for another URL; introspection reports the
// binding.
func TestDPoP_AdminAPI(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	client := newDPoPClient(t, e.clock.Now)
	status, _, body := e.dpopTokenRequest(e.adminID, e.adminSecret,
		url.Values{"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}},
		client.proof(t, "POST", e.issuer+"/oauth2/token", "", nil))
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("admin token = %d %v", status, body)
	}
	tok := body["access_token"].(string)
	keysURL := e.issuer + "/admin/keys"
	get := func(auth string, proofs ...string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, keysURL, nil)
		req.Header.Set("Authorization", auth)
		for _, p := range proofs {
			req.Header.Add("DPoP", p)
		}
		return e.do(req)
	}
	proof := client.proof(t, "GET", keysURL, tok, nil)
	if status, _, body := get("DPoP "+tok, proof); status != http.StatusOK {
		t.Fatalf("DPoP with proof = %d %v", status, body)
	}
	for _, tc := range []struct {
		name   string
		auth   string
		proofs []string
		code   string
		www    string
	}{
		{"DPoP token as Bearer", "Bearer " + tok, nil, "invalid_token", `Bearer realm="signet-admin", error="invalid_token"`},
		{"DPoP token as Bearer, with a proof", "Bearer " + tok, []string{client.proof(t, "GET", keysURL, tok, nil)}, "invalid_token", `Bearer realm="signet-admin", error="invalid_token"`},
		{"replayed proof", "DPoP " + tok, []string{proof}, "invalid_dpop_proof", `DPoP error="invalid_dpop_proof"`},
		{"proof for another URL", "DPoP " + tok, []string{client.proof(t, "GET", e.issuer+"/admin/clients", tok, nil)}, "invalid_dpop_proof", `DPoP error="invalid_dpop_proof"`},
		{"proof without ath", "DPoP " + tok, []string{client.proof(t, "GET", keysURL, "", nil)}, "invalid_dpop_proof", `DPoP error="invalid_dpop_proof"`},
		{"proof by another key", "DPoP " + tok, []string{newDPoPClient(t, e.clock.Now).proof(t, "GET", keysURL, tok, nil)}, "invalid_dpop_proof", `DPoP error="invalid_dpop_proof"`},
		{"no proof", "DPoP " + tok, nil, "invalid_dpop_proof", `DPoP error="invalid_dpop_proof"`},
		{"bearer token as DPoP", "DPoP " + e.adminToken(), []string{client.proof(t, "GET", keysURL, "", nil)}, "invalid_token", `DPoP error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := get(tc.auth, tc.proofs...)
			if status != http.StatusUnauthorized || body["error"] != tc.code || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), tc.www) {
				t.Fatalf("= %d %q %v, want 401 %s", status, hdr.Get("WWW-Authenticate"), body, tc.code)
			}
		})
	}
}

// BenchmarkClientCredentialsDPoP is BenchmarkClientCredentials (ES256)
// with an ES256 DPoP proof on every request: the proof's verification and
// the spending of its jti in the store (a bolt Batch, fsync'd) on top of
// the client_credentials grant ("dpop"), and the same with the jti spent
// in memory instead ("dpop-memory", what one replica alone would need), to
// show what the shared replay cache costs. Requests come from 32 goroutines per core,
// as in BenchmarkRefresh, so concurrent jti writes share commits; cpu-ns/op
// is the server's CPU per request. Proofs are signed before the timer
// starts (-benchtime Nx with N <= 65536).
func BenchmarkClientCredentialsDPoP(b *testing.B) {
	memory := func(now func() time.Time) *jwks.DPoPChecker {
		c, err := jwks.NewDPoPChecker(jwks.WithDPoPClock(now))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	for _, name := range []string{"bearer", "dpop", "dpop-memory"} {
		dpop := name != "bearer"
		b.Run(name, func(b *testing.B) {
			o := envOptions{algs: []string{"ES256"}}
			if name == "dpop-memory" {
				o.dpop = memory
			}
			e := newEnv(b, o)
			secret := e.createClient(clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: "ES256"})
			client := newDPoPClient(b, e.clock.Now)
			const body = "grant_type=client_credentials&scope=read"
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+secret))
			proofs := make(chan string, 1<<16)
			if b.N > cap(proofs) {
				b.Fatalf("%d requests, %d pre-signed proofs at most: use -benchtime Nx", b.N, cap(proofs))
			}
			if dpop {
				for range b.N {
					proofs <- client.proof(b, "POST", e.issuer+"/oauth2/token", "", nil)
				}
			}
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			done := reportCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", auth)
					if dpop {
						req.Header.Set("DPoP", <-proofs)
					}
					w := &discardWriter{h: http.Header{}}
					e.srv.ServeHTTP(w, req)
					if w.status != http.StatusOK {
						b.Errorf("status %d", w.status)
						return
					}
				}
			})
			done()
		})
	}
}

// dpopPost is a token request (form, Basic credentials when secret is not
// empty, client_id in the form otherwise) with the given DPoP headers.
func (e *env) dpopPost(id, secret string, form url.Values, proofs ...string) (int, map[string]any) {
	e.t.Helper()
	if secret == "" {
		form.Set("client_id", id)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(id, secret)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	status, _, body := e.do(req)
	return status, body
}

// TestDPoP_UserGrants: the code, password and refresh grants bind the
// access token to the proof's key too. A public client's refresh family is
// bound to the key (RFC 9449 §5): a refresh without a proof, or with
// another key's, is refused and rotates nothing; a confidential client's is
// not (its authentication protects it), so it may refresh without a proof
// and get a bearer token, or change keys.
func TestDPoP_UserGrants(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	alice := e.createUser("alice")
	conf := e.createClient(clients.Client{ID: "conf", Scopes: []string{"read"}, Audiences: []string{"api"},
		GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken}})
	e.createClient(clients.Client{ID: "pub", Public: true, FirstParty: true, Scopes: []string{"read"}, Audiences: []string{"api"},
		GrantTypes: []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}, RedirectURIs: []string{"https://app.example/cb"}})
	client := newDPoPClient(t, e.clock.Now)
	tokenURL := e.issuer + "/oauth2/token"
	proof := func(c *dpopClient) string { return c.proof(t, "POST", tokenURL, "", nil) }
	bound := func(what string, status int, body map[string]any) string {
		t.Helper()
		if status != http.StatusOK || body["token_type"] != "DPoP" {
			t.Fatalf("%s = %d %v, want a DPoP token", what, status, body)
		}
		if cnf, _ := claimsOf(t, body["access_token"].(string))["cnf"].(map[string]any); cnf["jkt"] != client.jkt {
			t.Fatalf("%s: cnf = %v", what, cnf)
		}
		return body["refresh_token"].(string)
	}
	refresh := func(id, secret, rt string, proofs ...string) (int, map[string]any) {
		return e.dpopPost(id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, proofs...)
	}

	// The public client's code, as the login pages would issue it.
	sm := sessions.New(e.store, sessions.Options{Now: e.clock.Now})
	_, sess, err := sm.Start(t.Context(), alice, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, instance, err := e.srv.LoginClientInstance(t.Context(), "pub")
	if err != nil {
		t.Fatal(err)
	}
	verifier := base64.RawURLEncoding.EncodeToString([]byte("a code verifier of at least 43 characters long"))
	code, err := sm.IssueCode(t.Context(), sessions.Code{ClientID: "pub", ClientInstance: instance, RedirectURI: "https://app.example/cb",
		RedirectGiven: true, Challenge: authority.S256(verifier), Scope: "read", UserID: alice, SID: sess.SID, Session: sess.Key, AuthTime: sess.AuthTime})
	if err != nil {
		t.Fatal(err)
	}
	status, body := e.dpopPost("pub", "", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier}}, proof(client))
	rt := bound("code grant", status, body)
	for _, tc := range []struct {
		name   string
		proofs []string
	}{
		{"public client, no proof", nil},
		{"public client, another key's proof", []string{proof(newDPoPClient(t, e.clock.Now))}},
	} {
		if status, body := refresh("pub", "", rt, tc.proofs...); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("%s: %d %v, want 400 invalid_grant", tc.name, status, body)
		}
	}
	// The refusals rotated nothing: the token still works with the key.
	status, body = refresh("pub", "", rt, proof(client))
	rt = bound("public client refresh", status, body)
	status, body = refresh("pub", "", rt, proof(client))
	bound("public client second refresh", status, body)

	status, body = e.dpopPost("conf", conf, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}, "scope": {"read"}}, proof(client))
	rt = bound("password grant", status, body)
	status, body = refresh("conf", conf, rt)
	if status != http.StatusOK || body["token_type"] != "Bearer" || claimsOf(t, body["access_token"].(string))["cnf"] != nil {
		t.Fatalf("confidential client without proof: %d %v, want a bearer token", status, body)
	}
	status, body = refresh("conf", conf, body["refresh_token"].(string), proof(newDPoPClient(t, e.clock.Now)))
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("confidential client with a new key: %d %v", status, body)
	}
}

// TestDPoP_ReplayStoreFailure: when the store cannot record a proof's jti,
// the token request is a JSON 500 (the server's failure, not the client's
// proof) with no token, and nothing was spent: once the store recovers the
// same proof is accepted, once.
func TestDPoP_ReplayStoreFailure(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStore{Store: st}
	e := newEnv(t, envOptions{algs: []string{"ES256"}, store: fs})
	secret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"api"}})
	client := newDPoPClient(t, e.clock.Now)
	proof := client.proof(t, "POST", e.issuer+"/oauth2/token", "", nil)

	fs.fail.Store(true)
	status, _, body := e.dpopTokenRequest("svc", secret, nil, proof)
	if status != http.StatusInternalServerError || body["error"] != "server_error" || body["access_token"] != nil {
		t.Fatalf("store down = %d %v, want 500 server_error", status, body)
	}
	fs.fail.Store(false)
	if status, _, body := e.dpopTokenRequest("svc", secret, nil, proof); status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("store back = %d %v", status, body)
	}
	if status, _, body := e.dpopTokenRequest("svc", secret, nil, proof); status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("replay = %d %v", status, body)
	}
}
