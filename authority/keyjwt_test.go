package authority_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// clientKey is a client's signing key for private_key_jwt.
type clientKey struct {
	alg, kid string
	priv     any
	pub      jwk.Key
}

func newClientKey(t testing.TB, alg, kid string) clientKey {
	t.Helper()
	var priv any
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	return clientKey{alg: alg, kid: kid, priv: priv, pub: pub}
}

// jwksOf is the JWK Set of the public halves of keys.
func jwksOf(t testing.TB, keys ...clientKey) json.RawMessage {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		_ = set.AddKey(k.pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signJWT signs claims with k; hdr overrides header fields (a nil value
// removes one).
func signJWT(t testing.TB, k clientKey, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}
	for n, v := range hdr {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	input := b64(hb) + "." + b64(cb)
	s, err := jws.NewSigner(jwa.SignatureAlgorithm(h["alg"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign([]byte(input), k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

var jtiSeq atomic.Int64

// claimsFor are valid assertion claims for client id at e's clock.
func (e *env) claimsFor(id string) map[string]any {
	now := e.clock.Now().Unix()
	return map[string]any{"iss": id, "sub": id, "aud": e.issuer, "iat": now, "exp": now + 60,
		"jti": "jti-" + strings.Repeat("x", 8) + "-" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+jtiSeq.Add(1)%26)) + "-" + itoa(jtiSeq.Load())}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// assertionForm is a client_credentials request authenticated by assertion.
func assertionForm(assertion string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {clientauth.AssertionType}, "client_assertion": {assertion}}
}

func (e *env) keyJWTClient(id string, keys json.RawMessage, extra func(*clients.Client)) {
	e.t.Helper()
	spec := clients.Client{ID: id, AuthMethods: []string{clients.AuthPrivateKeyJWT}, JWKS: keys, Scopes: []string{"read"},
		Audiences: []string{"https://api.example.com"}, Introspect: true}
	if extra != nil {
		extra(&spec)
	}
	if secret := e.createClient(spec); secret != "" {
		e.t.Fatalf("a private_key_jwt client was given a secret")
	}
}

func TestPrivateKeyJWT_ClientCredentials(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, alg := range []string{"ES256", "RS256", "PS256", "EdDSA"} {
		k := newClientKey(t, alg, "k-"+alg)
		id := "svc-" + strings.ToLower(alg)
		e.keyJWTClient(id, jwksOf(t, k), nil)
		status, hdr, body := e.tokenRequest(assertionForm(signJWT(t, k, nil, e.claimsFor(id))), "", "")
		if status != http.StatusOK {
			t.Fatalf("%s: token = %d %v", alg, status, body)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control = %q", alg, hdr.Get("Cache-Control"))
		}
		if c := decodePayload(t, body["access_token"].(string)); c["sub"] != id || c["client_id"] != id {
			t.Errorf("%s: token sub %v client_id %v, want %s", alg, c["sub"], c["client_id"], id)
		}
	}
	// aud may be the token endpoint URL, or an array containing the issuer;
	// client_id may be sent too when it matches; no kid tries every key.
	k := newClientKey(t, "ES256", "k1")
	e.keyJWTClient("svc", jwksOf(t, k), nil)
	for name, edit := range map[string]func(c map[string]any, h map[string]any, f url.Values){
		"aud token endpoint": func(c, _ map[string]any, _ url.Values) { c["aud"] = e.issuer + "/oauth2/token" },
		"aud array":          func(c, _ map[string]any, _ url.Values) { c["aud"] = []string{"https://other.example", e.issuer} },
		"client_id matches":  func(_, _ map[string]any, f url.Values) { f.Set("client_id", "svc") },
		"no kid":             func(_, h map[string]any, _ url.Values) { h["kid"] = nil },
		"no typ":             func(_, h map[string]any, _ url.Values) { h["typ"] = nil },
		"RFC 7523bis typ":    func(_, h map[string]any, _ url.Values) { h["typ"] = "client-authentication+jwt" },
	} {
		c, h := e.claimsFor("svc"), map[string]any{}
		f := url.Values{}
		edit(c, h, f)
		form := assertionForm(signJWT(t, k, h, c))
		for n, v := range f {
			form[n] = v
		}
		if status, _, body := e.tokenRequest(form, "", ""); status != http.StatusOK {
			t.Errorf("%s: token = %d %v, want 200", name, status, body)
		}
	}
}

// TestPrivateKeyJWT_Attacks is the attack table: each row an assertion
// that must be refused, through the real HTTP server.
func TestPrivateKeyJWT_Attacks(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := newClientKey(t, "ES256", "k1")
	other := newClientKey(t, "ES256", "k-other")
	rsaKey := newClientKey(t, "RS256", "k-rsa")
	e.keyJWTClient("svc", jwksOf(t, k, rsaKey), func(c *clients.Client) { c.AssertionAlgs = []string{"ES256"} })
	e.keyJWTClient("other", jwksOf(t, other), nil)
	secret := e.createClient(clients.Client{ID: "secret-client", Audiences: []string{"https://api.example.com"}})
	now := e.clock.Now().Unix()

	replayed := signJWT(t, k, nil, e.claimsFor("svc"))
	if status, _, body := e.tokenRequest(assertionForm(replayed), "", ""); status != http.StatusOK {
		t.Fatalf("first use = %d %v", status, body)
	}
	pubJSON, _ := json.Marshal(k.pub)
	hmacForged := func(c map[string]any) string {
		hb, _ := json.Marshal(map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"})
		cb, _ := json.Marshal(c)
		in := b64(hb) + "." + b64(cb)
		m := hmac.New(sha256.New, pubJSON) // the published public key as the HMAC secret
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	noneAlg := func(c map[string]any) string {
		hb, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
		cb, _ := json.Marshal(c)
		return b64(hb) + "." + b64(cb) + "."
	}
	with := func(edit func(c map[string]any)) map[string]any {
		c := e.claimsFor("svc")
		edit(c)
		return c
	}
	for _, row := range []struct {
		name      string
		assertion string
		extra     url.Values
		basic     bool
		status    int
		desc      string
	}{
		{name: "replay on the same replica", assertion: replayed, status: 401, desc: "already used"},
		{name: "wrong aud", assertion: signJWT(t, k, nil, with(func(c map[string]any) { c["aud"] = "https://other-issuer.example" })), status: 401, desc: "aud"},
		{name: "aud of another endpoint path", assertion: signJWT(t, k, nil, with(func(c map[string]any) { c["aud"] = e.issuer + "/oauth2/tokenX" })), status: 401, desc: "aud"},
		{name: "no aud", assertion: signJWT(t, k, nil, with(func(c map[string]any) { delete(c, "aud") })), status: 401, desc: "aud"},
		{name: "expired", assertion: signJWT(t, k, nil, with(func(c map[string]any) { c["exp"] = now - 120 })), status: 401, desc: "expired"},
		{name: "far-future exp", assertion: signJWT(t, k, nil, with(func(c map[string]any) { c["exp"] = now + 3600 })), status: 401, desc: "ahead"},
		{name: "no exp", assertion: signJWT(t, k, nil, with(func(c map[string]any) { delete(c, "exp") })), status: 401, desc: "no exp"},
		{name: "not yet valid", assertion: signJWT(t, k, nil, with(func(c map[string]any) { c["nbf"] = now + 120 })), status: 401, desc: "nbf"},
		{name: "no jti", assertion: signJWT(t, k, nil, with(func(c map[string]any) { delete(c, "jti") })), status: 401, desc: "jti"},
		{name: "alg none", assertion: noneAlg(e.claimsFor("svc")), status: 401, desc: "malformed"},
		{name: "alg none with a signature", assertion: noneAlg(e.claimsFor("svc")) + "AAAA", status: 401, desc: "alg"},
		{name: "HMAC signed with the public key", assertion: hmacForged(e.claimsFor("svc")), status: 401, desc: "alg"},
		{name: "another client's key", assertion: signJWT(t, other, map[string]any{"kid": "k1"}, e.claimsFor("svc")), status: 401, desc: "signature"},
		{name: "another client's key, its own kid", assertion: signJWT(t, other, nil, e.claimsFor("svc")), status: 401, desc: "signature"},
		{name: "iss != sub", assertion: signJWT(t, k, nil, with(func(c map[string]any) { c["iss"] = "other" })), status: 401, desc: "iss and sub"},
		{name: "sub names another client", assertion: signJWT(t, k, nil, func() map[string]any { return e.claimsFor("other") }()), status: 401, desc: "signature"},
		{name: "alg not allowed for the client", assertion: signJWT(t, rsaKey, nil, e.claimsFor("svc")), status: 401, desc: "not allowed"},
		{name: "a client_secret client", assertion: signJWT(t, k, nil, e.claimsFor("secret-client")), status: 401, desc: "failed"},
		{name: "unknown client", assertion: signJWT(t, k, nil, e.claimsFor("nobody")), status: 401, desc: "failed"},
		{name: "wrong assertion type", assertion: signJWT(t, k, nil, e.claimsFor("svc")), extra: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}}, status: 401, desc: "client_assertion_type"},
		{name: "client_id differs from sub", assertion: signJWT(t, k, nil, e.claimsFor("svc")), extra: url.Values{"client_id": {"other"}}, status: 400, desc: "client_id"},
		{name: "assertion and HTTP Basic", assertion: signJWT(t, k, nil, e.claimsFor("svc")), basic: true, status: 400, desc: "one method"},
		{name: "assertion and client_secret", assertion: signJWT(t, k, nil, e.claimsFor("svc")), extra: url.Values{"client_secret": {secret}}, status: 400, desc: "one method"},
		{name: "padded base64", assertion: strings.Replace(signJWT(t, k, nil, e.claimsFor("svc")), ".", "=.", 1), status: 401, desc: "malformed"},
		{name: "four parts", assertion: signJWT(t, k, nil, e.claimsFor("svc")) + ".e30", status: 401, desc: "malformed"},
		{name: "typ of a DPoP proof", assertion: signJWT(t, k, map[string]any{"typ": "dpop+jwt"}, e.claimsFor("svc")), status: 401, desc: "typ"},
		{name: "typ of an access token", assertion: signJWT(t, k, map[string]any{"typ": "at+jwt"}, e.claimsFor("svc")), status: 401, desc: "typ"},
		{name: "crit header", assertion: signJWT(t, k, map[string]any{"crit": []string{"exp"}}, e.claimsFor("svc")), status: 401, desc: "crit"},
		{name: "signature of other bytes", assertion: func() string {
			a := strings.Split(signJWT(t, k, nil, e.claimsFor("svc")), ".")
			b := strings.Split(signJWT(t, k, nil, e.claimsFor("svc")), ".")
			return a[0] + "." + a[1] + "." + b[2]
		}(), status: 401, desc: "signature"},
	} {
		form := assertionForm(row.assertion)
		for n, v := range row.extra {
			form[n] = v
		}
		id, sec := "", ""
		if row.basic {
			id, sec = "secret-client", secret
		}
		status, hdr, body := e.tokenRequest(form, id, sec)
		if status != row.status {
			t.Errorf("%s: status %d %v, want %d", row.name, status, body, row.status)
			continue
		}
		want := "invalid_client"
		if row.status == 400 {
			want = "invalid_request"
		}
		desc, _ := body["error_description"].(string)
		if body["error"] != want || !strings.Contains(desc, row.desc) {
			t.Errorf("%s: %v, want %s mentioning %q", row.name, body, want, row.desc)
		}
		if _, ok := body["access_token"]; ok || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: not a JSON error: %v %v", row.name, hdr, body)
		}
	}
}

// TestPrivateKeyJWT_EveryEndpoint: revocation and introspection take the
// same assertions through the same entry point, with their own URL as aud
// accepted too.
func TestPrivateKeyJWT_EveryEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := newClientKey(t, "ES256", "k1")
	e.keyJWTClient("svc", jwksOf(t, k), nil)
	_, _, body := e.tokenRequest(assertionForm(signJWT(t, k, nil, e.claimsFor("svc"))), "", "")
	tok, _ := body["access_token"].(string)
	if tok == "" {
		t.Fatalf("token: %v", body)
	}
	post := func(path string, form url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		status, _, m := e.do(req)
		return status, m
	}
	for _, aud := range []string{e.issuer, e.issuer + "/oauth2/token", e.issuer + "/oauth2/introspect"} {
		c := e.claimsFor("svc")
		c["aud"] = aud
		form := url.Values{"token": {tok}, "client_assertion_type": {clientauth.AssertionType}, "client_assertion": {signJWT(t, k, nil, c)}}
		if status, m := post("/oauth2/introspect", form); status != 200 || m["active"] != true {
			t.Errorf("introspect with aud %s = %d %v", aud, status, m)
		}
	}
	// The introspection URL is no aud for the revocation endpoint.
	c := e.claimsFor("svc")
	c["aud"] = e.issuer + "/oauth2/introspect"
	form := url.Values{"token": {tok}, "client_assertion_type": {clientauth.AssertionType}, "client_assertion": {signJWT(t, k, nil, c)}}
	if status, m := post("/oauth2/revoke", form); status != 401 {
		t.Errorf("revoke with the introspection URL as aud = %d %v, want 401", status, m)
	}
	form.Set("client_assertion", signJWT(t, k, nil, e.claimsFor("svc")))
	if status, m := post("/oauth2/revoke", form); status != 200 {
		t.Errorf("revoke = %d %v", status, m)
	}
	// A replayed assertion is refused at another endpoint too.
	if status, m := post("/oauth2/introspect", form); status != 401 {
		t.Errorf("introspect with the revocation's assertion = %d %v, want 401", status, m)
	}
}

// TestPrivateKeyJWT_ReplayAcrossReplicas: the jti is recorded in the
// store, so an assertion accepted by one replica is refused by another
// on the same etcd cluster.
func TestPrivateKeyJWT_ReplayAcrossReplicas(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{})
	open := func() *etcd.Store {
		st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: cluster.Endpoints(), Prefix: "/signet/"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a := newEnv(t, envOptions{store: open()})
	k := newClientKey(t, "ES256", "k1")
	a.keyJWTClient("svc", jwksOf(t, k), nil)
	b := newEnv(t, envOptions{store: open(), noAdmin: true})
	c := a.claimsFor("svc")
	c["aud"] = []string{a.issuer, b.issuer} // one issuer in a real fleet; two test servers here
	assertion := signJWT(t, k, nil, c)
	if status, _, body := a.tokenRequest(assertionForm(assertion), "", ""); status != 200 {
		t.Fatalf("replica A = %d %v", status, body)
	}
	status, _, body := b.tokenRequest(assertionForm(assertion), "", "")
	if status != 401 || !strings.Contains(body["error_description"].(string), "already used") {
		t.Fatalf("replica B with A's assertion = %d %v, want 401 already used", status, body)
	}
	// Concurrent first uses at both replicas: exactly one wins.
	c = a.claimsFor("svc")
	c["aud"] = []string{a.issuer, b.issuer}
	assertion = signJWT(t, k, nil, c)
	results := make(chan int, 2)
	for _, e := range []*env{a, b} {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(assertionForm(assertion).Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	got := map[int]int{}
	for range 2 {
		got[<-results]++
	}
	if got[200] != 1 || got[401] != 1 {
		t.Fatalf("concurrent uses at two replicas: %v, want one 200 and one 401", got)
	}
}

// jwksServer serves a JWK Set (or what serve writes) on loopback, counting requests.
func jwksServer(t *testing.T, serve http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	n := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		serve(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, n
}

func TestPrivateKeyJWT_JWKSURI(t *testing.T) {
	fetchClock := signettest.NewClock(time.Now())
	e := newEnv(t, envOptions{outbound: outbound.New(outbound.Options{AllowLoopback: true, RefetchEvery: 30 * time.Second, Now: fetchClock.Now})})
	k1, k2 := newClientKey(t, "ES256", "k1"), newClientKey(t, "ES256", "k2")
	var doc atomic.Value
	doc.Store(jwksOf(t, k1))
	srv, hits := jwksServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(doc.Load().(json.RawMessage))
	})
	e.keyJWTClient("svc", nil, func(c *clients.Client) { c.JWKSURI = srv.URL + "/jwks.json" })
	for range 3 {
		if status, _, body := e.tokenRequest(assertionForm(signJWT(t, k1, nil, e.claimsFor("svc"))), "", ""); status != 200 {
			t.Fatalf("k1 = %d %v", status, body)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("jwks_uri fetched %d times for 3 requests, want 1 (cached)", hits.Load())
	}
	// The client rotates to k2 a while later: the unknown kid refetches once.
	doc.Store(jwksOf(t, k1, k2))
	fetchClock.Add(31 * time.Second)
	if status, _, body := e.tokenRequest(assertionForm(signJWT(t, k2, nil, e.claimsFor("svc"))), "", ""); status != 200 {
		t.Fatalf("k2 after rotation = %d %v", status, body)
	}
	if hits.Load() != 2 {
		t.Fatalf("jwks_uri fetched %d times, want 2", hits.Load())
	}
	// A stream of unknown kids costs the URL's owner no more fetches
	// within the refetch interval.
	stranger := newClientKey(t, "ES256", "k-unknown")
	for range 5 {
		if status, _, _ := e.tokenRequest(assertionForm(signJWT(t, stranger, nil, e.claimsFor("svc"))), "", ""); status != 401 {
			t.Fatalf("unknown kid = %d, want 401", status)
		}
	}
	if hits.Load() != 2 {
		t.Fatalf("jwks_uri fetched %d times after 5 unknown kids, want still 2", hits.Load())
	}
}

// TestPrivateKeyJWT_JWKSURIRefused: jwks_uri values that would make Signet
// fetch from its own network, follow a redirect there or read without
// bound are refused, and the client cannot authenticate.
func TestPrivateKeyJWT_JWKSURIRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := newClientKey(t, "ES256", "k1")
	var metadataHit atomic.Int64
	metadata := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { metadataHit.Add(1) }))
	defer metadata.Close()
	redirect, _ := jwksServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", http.StatusFound)
	})
	redirectLoop, _ := jwksServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, metadata.URL+"/jwks.json", http.StatusTemporaryRedirect)
	})
	huge, _ := jwksServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 4<<20) + `]}`))
	})
	for i, uri := range []string{
		"https://10.1.2.3/jwks.json",
		"https://169.254.169.254/latest/meta-data/jwks.json",
		"https://192.168.0.10:8443/jwks.json",
		"https://[fd00:ec2::254]/jwks.json",
		redirect.URL + "/jwks.json",
		redirectLoop.URL + "/jwks.json",
		huge.URL + "/jwks.json",
	} {
		id := "svc" + itoa(int64(i))
		e.keyJWTClient(id, nil, func(c *clients.Client) { c.JWKSURI = uri })
		status, _, body := e.tokenRequest(assertionForm(signJWT(t, k, nil, e.claimsFor(id))), "", "")
		if status != 401 || body["error"] != "invalid_client" {
			t.Errorf("jwks_uri %s: %d %v, want 401 invalid_client", uri, status, body)
		}
	}
	if metadataHit.Load() != 0 {
		t.Errorf("a redirect target was fetched %d times", metadataHit.Load())
	}
	if strings.Contains(e.logs.String(), "eyJhbGci") { // the start of every assertion here
		t.Errorf("an assertion was logged: %s", e.logs.String())
	}
}

// TestPrivateKeyJWT_Registration: the registry refuses key material
// private_key_jwt cannot use safely.
func TestPrivateKeyJWT_Registration(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := newClientKey(t, "ES256", "k1")
	privJWK, _ := jwk.FromRaw(k.priv)
	privSet, _ := json.Marshal(map[string]any{"keys": []any{privJWK}})
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallJWK, _ := jwk.FromRaw(&smallRSA.PublicKey)
	smallSet, _ := json.Marshal(map[string]any{"keys": []any{smallJWK}})
	base := func() clients.Client {
		return clients.Client{ID: "c", AuthMethods: []string{clients.AuthPrivateKeyJWT}, Audiences: []string{"https://api.example.com"}}
	}
	for _, row := range []struct {
		name, field string
		edit        func(*clients.Client)
	}{
		{"no keys", "jwks", func(c *clients.Client) {}},
		{"both jwks and jwks_uri", "jwks", func(c *clients.Client) { c.JWKS, c.JWKSURI = jwksOf(t, k), "https://keys.example.com/jwks.json" }},
		{"a private key", "jwks", func(c *clients.Client) { c.JWKS = privSet }},
		{"a symmetric key", "jwks", func(c *clients.Client) { c.JWKS = json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`) }},
		{"RSA 1024", "jwks", func(c *clients.Client) { c.JWKS = smallSet }},
		{"not a JWK Set", "jwks", func(c *clients.Client) { c.JWKS = json.RawMessage(`{"keys":"x"}`) }},
		{"http jwks_uri", "jwks_uri", func(c *clients.Client) { c.JWKSURI = "http://keys.example.com/jwks.json" }},
		{"jwks_uri with credentials", "jwks_uri", func(c *clients.Client) { c.JWKSURI = "https://u:p@keys.example.com/jwks.json" }},
		{"alg none", "token_endpoint_auth_signing_algs", func(c *clients.Client) { c.JWKS, c.AssertionAlgs = jwksOf(t, k), []string{"none"} }},
		{"alg HS256", "token_endpoint_auth_signing_algs", func(c *clients.Client) { c.JWKS, c.AssertionAlgs = jwksOf(t, k), []string{"HS256"} }},
		{"no key fits the algs", "jwks", func(c *clients.Client) { c.JWKS, c.AssertionAlgs = jwksOf(t, k), []string{"RS256"} }},
		{"public client", "token_endpoint_auth_methods", func(c *clients.Client) { c.JWKS, c.Public = jwksOf(t, k), true }},
		{"jwks without private_key_jwt", "jwks", func(c *clients.Client) {
			c.JWKS, c.AuthMethods = jwksOf(t, k), []string{clients.AuthSecretBasic}
		}},
	} {
		spec := base()
		row.edit(&spec)
		_, _, err := e.srv.Clients().Create(t.Context(), spec)
		if err == nil || !strings.Contains(err.Error(), row.field+":") {
			t.Errorf("%s: Create = %v, want a problem with %s", row.name, err, row.field)
		}
	}
	// Through the admin API: 400 naming the field; a good one is created
	// with no secret and the default algorithms.
	status, _, body := e.admin(http.MethodPost, "/admin/clients", e.adminToken(), map[string]any{
		"client_id": "bad", "token_endpoint_auth_methods": []string{"private_key_jwt"}, "audiences": []string{"https://api.example.com"},
		"jwks": json.RawMessage(privSet)})
	if status != 400 || !strings.Contains(body["error_description"].(string), "jwks") {
		t.Errorf("admin create with a private key = %d %v", status, body)
	}
	status, _, body = e.admin(http.MethodPost, "/admin/clients", e.adminToken(), map[string]any{
		"client_id": "good", "audiences": []string{"https://api.example.com"}, "jwks": jwksOf(t, k)})
	if status != 201 && status != 200 {
		t.Fatalf("admin create = %d %v", status, body)
	}
	if s, _ := body["client_secret"].(string); s != "" {
		t.Errorf("private_key_jwt client got a secret")
	}
	if m, _ := body["token_endpoint_auth_methods"].([]any); len(m) != 1 || m[0] != "private_key_jwt" {
		t.Errorf("methods = %v, want [private_key_jwt] (jwks given, no method named)", body["token_endpoint_auth_methods"])
	}
	if status, _, body := e.tokenRequest(assertionForm(signJWT(t, k, nil, e.claimsFor("good"))), "", ""); status != 200 {
		t.Errorf("token for the admin-made client = %d %v", status, body)
	}
	// PATCH: switch to jwks_uri, which replaces jwks.
	status, _, body = e.admin(http.MethodPatch, "/admin/clients/good", e.adminToken(), map[string]any{"jwks_uri": "https://keys.example.com/jwks.json"})
	if status != 200 || body["jwks_uri"] != "https://keys.example.com/jwks.json" || body["jwks"] != nil {
		t.Errorf("admin patch = %d %v", status, body)
	}
}

func TestPrivateKeyJWT_Discovery(t *testing.T) {
	e := newEnv(t, envOptions{})
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/.well-known/openid-configuration", nil)
	_, _, m := e.do(req)
	for _, prefix := range []string{"token_endpoint", "revocation_endpoint", "introspection_endpoint"} {
		methods, _ := m[prefix+"_auth_methods_supported"].([]any)
		found := false
		for _, x := range methods {
			found = found || x == "private_key_jwt"
		}
		if !found {
			t.Errorf("%s_auth_methods_supported = %v, want private_key_jwt", prefix, methods)
		}
		algs, _ := m[prefix+"_auth_signing_alg_values_supported"].([]any)
		if len(algs) == 0 {
			t.Errorf("%s_auth_signing_alg_values_supported missing", prefix)
		}
		for _, a := range algs {
			if a == "none" || strings.HasPrefix(a.(string), "HS") {
				t.Errorf("%s lists %s", prefix, a)
			}
		}
	}
}

// TestPrivateKeyJWT_PurgeJTIs: the purge removes jtis whose assertion can
// no longer be presented, and keeps the others.
func TestPrivateKeyJWT_PurgeJTIs(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := newClientKey(t, "ES256", "k1")
	e.keyJWTClient("svc", jwksOf(t, k), nil)
	for range 3 {
		if status, _, body := e.tokenRequest(assertionForm(signJWT(t, k, nil, e.claimsFor("svc"))), "", ""); status != 200 {
			t.Fatalf("token = %d %v", status, body)
		}
	}
	count := func() int {
		n := 0
		_ = e.store.View(t.Context(), func(tx storage.Tx) error {
			return tx.Scan(clientauth.JTIBucket, "", func(string, []byte) error { n++; return nil })
		})
		return n
	}
	if count() != 3 {
		t.Fatalf("%d jtis stored, want 3", count())
	}
	if err := storage.PurgeErr(e.srv.Purge(t.Context())); err != nil {
		t.Fatal(err)
	}
	if count() != 3 {
		t.Fatalf("purge removed live jtis: %d left", count())
	}
	e.clock.Add(2 * time.Minute) // past exp (60s) and the leeway (30s)
	if err := storage.PurgeErr(e.srv.Purge(t.Context())); err != nil {
		t.Fatal(err)
	}
	if count() != 0 {
		t.Fatalf("%d jtis left after purge, want 0", count())
	}
}

// TestPrivateKeyJWT_RateLimited: failed assertions count against the same
// limits as wrong secrets; the holder of the key still gets through the
// per-client limit.
func TestPrivateKeyJWT_RateLimited(t *testing.T) {
	e := newEnv(t, envOptions{rateLimit: authority.RateLimit{PerClient: 3, PerIP: 100, Window: time.Minute}})
	k := newClientKey(t, "ES256", "k1")
	stranger := newClientKey(t, "ES256", "k1")
	e.keyJWTClient("svc", jwksOf(t, k), nil)
	for i := range 3 {
		if status, _, body := e.tokenRequest(assertionForm(signJWT(t, stranger, nil, e.claimsFor("svc"))), "", ""); status != 401 {
			t.Fatalf("forged assertion %d = %d %v, want 401", i, status, body)
		}
	}
	status, hdr, body := e.tokenRequest(assertionForm(signJWT(t, stranger, nil, e.claimsFor("svc"))), "", "")
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("forged assertion past the limit = %d %v, want 429 with Retry-After", status, body)
	}
	if status, _, body := e.tokenRequest(assertionForm(signJWT(t, k, nil, e.claimsFor("svc"))), "", ""); status != 200 {
		t.Fatalf("the key holder past the per-client limit = %d %v, want 200", status, body)
	}
}

// FuzzClientAssertion sends assertions with arbitrary headers and claims,
// signed with the registered key (so the fuzzer reaches past the
// signature), to the token endpoint: never a 5xx, always JSON with a known
// error, and a token only for claims that name the client.
func FuzzClientAssertion(f *testing.F) {
	e := newEnv(f, envOptions{algs: []string{"EdDSA"}})
	k := newClientKey(f, "ES256", "k1")
	e.keyJWTClient("svc", jwksOf(f, k), nil)
	now := e.clock.Now().Unix()
	claims := func(c map[string]any) []byte { b, _ := json.Marshal(c); return b }
	f.Add([]byte(`{"alg":"ES256","kid":"k1"}`), claims(map[string]any{"iss": "svc", "sub": "svc", "aud": e.issuer, "exp": now + 60, "jti": "a"}), true)
	f.Add([]byte(`{"alg":"ES256"}`), claims(map[string]any{"iss": "svc", "sub": "svc", "aud": []any{e.issuer, 1}, "exp": 1e300, "jti": "b"}), true)
	f.Add([]byte(`{"alg":"none"}`), claims(map[string]any{"iss": "svc", "sub": "svc", "aud": e.issuer, "exp": -1, "nbf": "x", "jti": "c"}), false)
	f.Add([]byte(`{"alg":"ES256","crit":[]}`), []byte(`{"iss":"svc","sub":"svc","exp":null}`), true)
	f.Add([]byte(`[]`), []byte(`"x"`), true)
	f.Fuzz(func(t *testing.T, header, payload []byte, sign bool) {
		if len(header) == 0 || len(payload) == 0 {
			return
		}
		in := b64(header) + "." + b64(payload)
		sig := []byte("not a signature")
		if sign {
			s, err := jws.NewSigner(jwa.ES256)
			if err != nil {
				t.Fatal(err)
			}
			if sig, err = s.Sign([]byte(in), k.priv); err != nil {
				t.Fatal(err)
			}
		}
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(assertionForm(in+"."+b64(sig)).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%d: body is not JSON: %q", w.Code, w.Body)
		}
		switch {
		case w.Code >= 500:
			t.Fatalf("%d %v", w.Code, m)
		case w.Code == http.StatusOK:
			var c map[string]any
			if json.Unmarshal(payload, &c) != nil || c["iss"] != "svc" || c["sub"] != "svc" {
				t.Fatalf("token issued for claims %s", payload)
			}
		case !knownErrors[m["error"].(string)]:
			t.Fatalf("%d unknown error %v", w.Code, m)
		}
	})
}
