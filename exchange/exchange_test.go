package exchange_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/exchange"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/users"
)

// chainEnv registers the clients of a delegation chain: the user logs in
// at web (its token is for service-a), service-a may exchange into
// service-b, service-b into service-c; service-c introspects.
type chainEnv struct {
	*env
	web, a, b, c, plain string // secrets
}

func newChain(t *testing.T) chainEnv {
	e := chainEnv{env: newEnv(t)}
	e.web = e.client(clients.Client{ID: "web", GrantTypes: []string{clients.GrantPassword, clients.GrantAuthorizationCode, clients.GrantTokenExchange},
		Scopes: []string{"openid", "read", "write", "delete"}, Audiences: []string{"service-a"}, AccessTokenTTL: clients.Duration(10 * time.Minute),
		RedirectURIs: []string{"https://app.example/cb"}, FirstParty: true, ExchangeAudiences: []string{"service-b"}})
	e.a = e.client(clients.Client{ID: "service-a", GrantTypes: []string{clients.GrantClientCredentials, clients.GrantTokenExchange},
		Scopes: []string{"read", "write"}, Audiences: []string{"service-a-self"}, ExchangeAudiences: []string{"service-b", "https://b.example/api"}})
	e.b = e.client(clients.Client{ID: "service-b", GrantTypes: []string{clients.GrantClientCredentials, clients.GrantTokenExchange},
		Scopes: []string{"read", "admin"}, Audiences: []string{"service-b-self"}, SigningAlg: "ES256", ExchangeAudiences: []string{"service-c"}})
	e.c = e.client(clients.Client{ID: "service-c", Audiences: []string{"service-c-self"}, Introspect: true})
	e.plain = e.client(clients.Client{ID: "plain", Scopes: []string{"read"}, Audiences: []string{"service-b"}})
	return e
}

// userToken is alice's access token at web, for service-a.
func (e chainEnv) userToken() string {
	return e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password},
		"scope": {"read write delete"}, "audience": {"service-a"}}, "web", e.web)
}

func (e chainEnv) introspect(tok string) map[string]any {
	e.t.Helper()
	code, body := e.post("/oauth2/introspect", url.Values{"token": {tok}}, "service-c", e.c, nil)
	if code != http.StatusOK {
		e.t.Fatalf("introspect = %d %v", code, body)
	}
	return body
}

// TestDelegationChain: a user's token is exchanged by service A for a
// token for B, which B exchanges for one for C; act nests (RFC 8693
// §4.1: the newest actor outermost), each step keeps the subject and can
// only narrow scope and lifetime, and the end of the chain is a live
// Signet token that dies with the user's logout.
func TestDelegationChain(t *testing.T) {
	e := newChain(t)
	user := e.userToken()
	uc := signettest.Claims(t, user)

	e.clock.Add(time.Minute)
	code, body := e.post("/oauth2/token", exchangeForm(user, "audience", "service-b"), "service-a", e.a, nil)
	if code != http.StatusOK || body["issued_token_type"] != exchange.TypeAccessToken || body["token_type"] != "Bearer" || body["scope"] != "read write" {
		t.Fatalf("A's exchange = %d %v", code, body)
	}
	ta := body["access_token"].(string)
	ac := signettest.Claims(t, ta)
	if ac["sub"] != e.alice || ac["aud"] != "service-b" || ac["client_id"] != "service-a" || ac["scope"] != "read write" {
		t.Fatalf("A's token = %v", ac)
	}
	if got, _ := json.Marshal(ac["act"]); string(got) != `{"sub":"service-a"}` {
		t.Fatalf("A's act = %s", got)
	}
	if ac["exp"] != uc["exp"] { // the user's token has 9 of its 10 minutes left; A's lifetime is 15
		t.Fatalf("A's exp = %v, want the subject token's %v", ac["exp"], uc["exp"])
	}
	if body["expires_in"] != float64(9*60) {
		t.Fatalf("expires_in = %v, want 540", body["expires_in"])
	}

	e.clock.Add(time.Minute)
	code, body = e.post("/oauth2/token", exchangeForm(ta, "audience", "service-c"), "service-b", e.b, nil)
	if code != http.StatusOK || body["scope"] != "read" {
		t.Fatalf("B's exchange = %d %v", code, body)
	}
	tb := body["access_token"].(string)
	bc := signettest.Claims(t, tb)
	if bc["sub"] != e.alice || bc["aud"] != "service-c" || bc["client_id"] != "service-b" || bc["exp"] != uc["exp"] {
		t.Fatalf("B's token = %v", bc)
	}
	if got, _ := json.Marshal(bc["act"]); string(got) != `{"act":{"sub":"service-a"},"sub":"service-b"}` {
		t.Fatalf("B's act = %s, want service-b acting for service-a", got)
	}
	for _, s := range strings.Fields(bc["scope"].(string)) {
		if !slices.Contains(strings.Fields(ac["scope"].(string)), s) {
			t.Fatalf("B's scope %q is not within A's %q", bc["scope"], ac["scope"])
		}
	}

	if in := e.introspect(tb); in["active"] != true || in["sub"] != e.alice {
		t.Fatalf("introspection of the chain's end = %v", in)
	}
	if _, err := e.srv.Logout(t.Context(), e.alice); err != nil {
		t.Fatal(err)
	}
	for i, tok := range []string{ta, tb} {
		if in := e.introspect(tok); in["active"] != false {
			t.Errorf("token %d of the chain is active after the user's logout: %v", i, in)
		}
	}
}

// TestExchangeRefused is the attack table: each row a request the
// grant must refuse, with the RFC 6749/8693 error.
func TestExchangeRefused(t *testing.T) {
	e := newChain(t)
	user := e.userToken()
	ta := e.token(exchangeForm(user, "audience", "service-b"), "service-a", e.a)
	idWeb := e.env.idToken("web", e.web)
	ccB := e.token(url.Values{"grant_type": {"client_credentials"}}, "service-b", e.b) // ES256
	foreign := foreignToken(t, signettest.Claims(t, e.token(url.Values{"grant_type": {"client_credentials"}}, "service-a", e.a)), ccB)

	type row struct {
		name       string
		req        func() url.Values
		id, secret string
		status     int
		code, why  string // why: in error_description
	}
	var taLive string // an exchanged token minted just before the user's logout
	fixed := func(f url.Values) func() url.Values { return func() url.Values { return f } }
	rows := []row{
		{"revoked subject token", func() url.Values {
			tok := e.userToken()
			if code, body := e.post("/oauth2/revoke", url.Values{"token": {tok}}, "web", e.web, nil); code != http.StatusOK {
				t.Fatalf("revoke = %d %v", code, body)
			}
			return exchangeForm(tok, "audience", "service-b")
		}, "service-a", e.a, 400, "invalid_request", "revoked"},
		{"widens scope: one the client lacks", func() url.Values {
			return exchangeForm(e.userToken(), "audience", "service-b", "scope", "read delete")
		}, "service-a", e.a, 400, "invalid_scope", "scope"},
		{"widens scope: one the subject token lacks", fixed(exchangeForm(ta, "audience", "service-c", "scope", "read admin")), "service-b", e.b, 400, "invalid_scope", "scope"},
		{"widens scope: one the next client lacks", fixed(exchangeForm(ta, "audience", "service-c", "scope", "write")), "service-b", e.b, 400, "invalid_scope", "scope"},
		{"widens audience", func() url.Values { return exchangeForm(e.userToken(), "audience", "service-c") }, "service-a", e.a, 400, "invalid_target", "audience"},
		{"widens audience by resource", func() url.Values {
			f := exchangeForm(e.userToken(), "audience", "service-b")
			f["resource"] = []string{"https://b.example/api", "https://evil.example/"}
			return f
		}, "service-a", e.a, 400, "invalid_target", "audience"},
		{"no audience", func() url.Values { return exchangeForm(e.userToken()) }, "service-a", e.a, 400, "invalid_request", "required"},
		{"subject token addressed to another service", func() url.Values {
			return exchangeForm(e.userToken(), "audience", "service-c")
		}, "service-b", e.b, 400, "invalid_request", "not addressed to this client"},
		{"ID token of another client", fixed(exchangeForm(idWeb, "subject_token_type", exchange.TypeIDToken, "audience", "service-b")), "service-a", e.a, 400, "invalid_request", "not addressed to this client"},
		{"ID token declared an access token", fixed(exchangeForm(idWeb, "audience", "service-b")), "web", e.web, 400, "invalid_request", "not an access token"},
		{"access token declared an ID token", func() url.Values {
			return exchangeForm(e.userToken(), "subject_token_type", exchange.TypeIDToken, "audience", "service-b")
		}, "service-a", e.a, 400, "invalid_request", "not an ID token"},
		{"subject token not a Signet token", fixed(exchangeForm(foreign, "audience", "service-c")), "service-b", e.b, 400, "invalid_request", "signature is invalid"},
		{"actor token not a Signet token", func() url.Values {
			return exchangeForm(e.userToken(), "audience", "service-b", "actor_token", foreign, "actor_token_type", exchange.TypeAccessToken)
		}, "service-a", e.a, 400, "invalid_request", "signature is invalid"},
		{"actor token of another client", func() url.Values {
			return exchangeForm(e.userToken(), "audience", "service-b", "actor_token", ccB, "actor_token_type", exchange.TypeAccessToken)
		}, "service-a", e.a, 400, "invalid_request", "not issued to this client"},
		{"actor token without its type", func() url.Values {
			return exchangeForm(e.userToken(), "audience", "service-b", "actor_token", ccB)
		}, "service-a", e.a, 400, "invalid_request", "required together"},
		{"unsupported subject token type", func() url.Values {
			return exchangeForm(e.userToken(), "subject_token_type", "urn:ietf:params:oauth:token-type:saml2", "audience", "service-b")
		}, "service-a", e.a, 400, "invalid_request", "subject_token_type must be"},
		{"requested token type not an access token", func() url.Values {
			return exchangeForm(e.userToken(), "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token", "audience", "service-b")
		}, "service-a", e.a, 400, "invalid_request", "requested_token_type"},
		{"client not allowed the grant", func() url.Values { return exchangeForm(e.userToken(), "audience", "service-b") }, "plain", e.plain, 400, "unauthorized_client", "not allowed"},
		{"expired subject token", func() url.Values {
			tok := e.userToken()
			e.clock.Add(10*time.Minute + time.Second)
			return exchangeForm(tok, "audience", "service-b")
		}, "service-a", e.a, 400, "invalid_request", "expired"},
		{"subject of a logged-out user", func() url.Values {
			tok := e.userToken()
			taLive = e.token(exchangeForm(tok, "audience", "service-b"), "service-a", e.a)
			e.clock.Add(time.Second)
			if _, err := e.srv.Logout(t.Context(), e.alice); err != nil {
				t.Fatal(err)
			}
			return exchangeForm(tok, "audience", "service-b")
		}, "service-a", e.a, 400, "invalid_request", "logout"},
		{"exchanged token of a logged-out user", func() url.Values { return exchangeForm(taLive, "audience", "service-c") }, "service-b", e.b, 400, "invalid_request", "logout"},
	}
	for _, r := range rows {
		code, body := e.post("/oauth2/token", r.req(), r.id, r.secret, nil)
		if desc, _ := body["error_description"].(string); code != r.status || body["error"] != r.code || !strings.Contains(desc, r.why) {
			t.Errorf("%s: %d %v, want %d %s (%s)", r.name, code, body, r.status, r.code, r.why)
		}
		if body["access_token"] != nil {
			t.Errorf("%s: a token was issued", r.name)
		}
	}
}

// TestExchangeIDTokenAndActor: an ID token is exchanged by the client it
// was issued to, carrying no scope; an actor token names the actor and
// its expiry caps the result.
func TestExchangeIDTokenAndActor(t *testing.T) {
	e := newChain(t)
	idt := e.env.idToken("web", e.web)
	code, body := e.post("/oauth2/token", exchangeForm(idt, "subject_token_type", exchange.TypeIDToken, "audience", "service-b"), "web", e.web, nil)
	if code != http.StatusOK {
		t.Fatalf("ID token exchange = %d %v", code, body)
	}
	if c := signettest.Claims(t, body["access_token"].(string)); c["sub"] != e.alice || c["scope"] != nil || c["aud"] != "service-b" || c["act"].(map[string]any)["sub"] != "web" {
		t.Fatalf("claims = %v", c)
	}

	actor := e.token(url.Values{"grant_type": {"client_credentials"}}, "service-a", e.a) // 15 minutes
	e.clock.Add(8 * time.Minute)
	user := e.userToken() // 10 minutes: outlives the actor token
	code, body = e.post("/oauth2/token", exchangeForm(user, "audience", "service-b", "actor_token", actor, "actor_token_type", exchange.TypeAccessToken), "service-a", e.a, nil)
	if code != http.StatusOK {
		t.Fatalf("exchange with actor = %d %v", code, body)
	}
	c := signettest.Claims(t, body["access_token"].(string))
	if c["exp"] != signettest.Claims(t, actor)["exp"] || c["act"].(map[string]any)["sub"] != "service-a" {
		t.Fatalf("claims = %v, want exp capped by the actor token's %v", c, signettest.Claims(t, actor)["exp"])
	}
}

// TestExchangeDPoPBoundSubject: a subject token bound to a DPoP key is
// exchanged only with a proof of that key.
func TestExchangeDPoPBoundSubject(t *testing.T) {
	e := newChain(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	proof := func() http.Header {
		return http.Header{"Dpop": {dpopProof(t, key, e.issuer+"/oauth2/token", e.clock.Now())}}
	}
	code, body := e.post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password},
		"scope": {"read"}, "audience": {"service-a"}}, "web", e.web, proof())
	if code != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("bound login = %d %v", code, body)
	}
	bound := body["access_token"].(string)
	if code, body := e.post("/oauth2/token", exchangeForm(bound, "audience", "service-b"), "service-a", e.a, nil); code != 400 || body["error"] != "invalid_request" {
		t.Fatalf("bound subject without proof = %d %v", code, body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := http.Header{"Dpop": {dpopProof(t, other, e.issuer+"/oauth2/token", e.clock.Now())}}
	if code, body := e.post("/oauth2/token", exchangeForm(bound, "audience", "service-b"), "service-a", e.a, h); code != 400 || body["error"] != "invalid_request" {
		t.Fatalf("bound subject with another key's proof = %d %v", code, body)
	}
	code, body = e.post("/oauth2/token", exchangeForm(bound, "audience", "service-b"), "service-a", e.a, proof())
	if code != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("bound subject with its key's proof = %d %v", code, body)
	}
}

// foreignToken is a token shaped like Signet's access token (its claims,
// the kid of the ES256 key of a Signet token) signed by a key Signet never
// had.
func foreignToken(t *testing.T, cl map[string]any, signetTok string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := jws.ParseString(signetTok)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, msg.Signatures()[0].ProtectedHeaders().KeyID())
	_ = h.Set(jws.TypeKey, "at+jwt")
	payload, _ := json.Marshal(cl)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// dpopProof is an RFC 9449 proof for POST u.
func dpopProof(t *testing.T, key *ecdsa.PrivateKey, u string, now time.Time) string {
	t.Helper()
	pub, err := jwk.FromRaw(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "dpop+jwt")
	_ = h.Set(jws.JWKKey, pub)
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	payload, _ := json.Marshal(map[string]any{"jti": hex.EncodeToString(jti[:]), "htm": "POST", "htu": u, "iat": now.Unix()})
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestExchangeChainBound: two services exchanging a user's token back and
// forth build an act chain one actor longer each time, up to MaxChain;
// the exchange that would go past it is refused.
func TestExchangeChainBound(t *testing.T) {
	e := newEnv(t)
	web := e.client(clients.Client{ID: "web", GrantTypes: []string{clients.GrantPassword}, Scopes: []string{"read"}, Audiences: []string{"ping"}})
	secrets := map[string]string{}
	for id, peer := range map[string]string{"ping": "pong", "pong": "ping"} {
		secrets[id] = e.client(clients.Client{ID: id, GrantTypes: []string{clients.GrantTokenExchange}, Scopes: []string{"read"},
			Audiences: []string{id + "-self"}, ExchangeAudiences: []string{peer}})
	}
	tok := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}, "scope": {"read"}}, "web", web)
	who, peer := "ping", "pong"
	for depth := 1; depth <= exchange.MaxChain; depth++ {
		tok = e.token(exchangeForm(tok, "audience", peer), who, secrets[who])
		n := 0
		for act, _ := signettest.Claims(t, tok)["act"].(map[string]any); act != nil; act, _ = act["act"].(map[string]any) {
			n++
		}
		if n != depth {
			t.Fatalf("exchange %d: the act chain has %d actors", depth, n)
		}
		who, peer = peer, who
	}
	code, body := e.post("/oauth2/token", exchangeForm(tok, "audience", peer), who, secrets[who], nil)
	if code != http.StatusBadRequest || body["error"] != "invalid_request" || !strings.Contains(body["error_description"].(string), "delegation chain") {
		t.Fatalf("exchange past MaxChain = %d %v", code, body)
	}
}

// TestExchangeRechecksPrivilegedScope: a privileged scope (signet:*) in a
// user's subject token is carried into the exchanged token only while the
// user still holds its role (issue 16: a grant must not outlive what
// allowed it): once the role is taken away it is dropped, and asking for it
// by name is invalid_scope.
func TestExchangeRechecksPrivilegedScope(t *testing.T) {
	e := newEnv(t)
	const ops = "signet:ops"
	web := e.client(clients.Client{ID: "web", GrantTypes: []string{clients.GrantPassword}, Scopes: []string{"read", ops}, Audiences: []string{"service-a"}, FirstParty: true})
	a := e.client(clients.Client{ID: "service-a", GrantTypes: []string{clients.GrantTokenExchange}, Scopes: []string{"read", ops},
		Audiences: []string{"service-a-self"}, ExchangeAudiences: []string{"service-b"}})
	roles := []string{ops}
	if _, _, err := e.srv.Users().Update(t.Context(), e.alice, users.Patch{Roles: &roles}); err != nil {
		t.Fatal(err)
	}
	userTok := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password},
		"scope": {"read " + ops}, "audience": {"service-a"}}, "web", web)
	if got := signettest.Claims(t, userTok)["scope"]; got != "read "+ops {
		t.Fatalf("user token scope = %v", got)
	}
	// While alice holds the role, the exchange carries it.
	code, body := e.post("/oauth2/token", exchangeForm(userTok, "audience", "service-b"), "service-a", a, nil)
	if code != http.StatusOK || body["scope"] != "read "+ops {
		t.Fatalf("exchange with the role = %d %v", code, body)
	}
	none := []string{}
	if _, _, err := e.srv.Users().Update(t.Context(), e.alice, users.Patch{Roles: &none}); err != nil {
		t.Fatal(err)
	}
	code, body = e.post("/oauth2/token", exchangeForm(userTok, "audience", "service-b"), "service-a", a, nil)
	if code != http.StatusOK || body["scope"] != "read" {
		t.Fatalf("exchange after the role was taken away = %d %v, want scope read only", code, body)
	}
	code, body = e.post("/oauth2/token", exchangeForm(userTok, "audience", "service-b", "scope", "read "+ops), "service-a", a, nil)
	if code != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("asking for %s after the role was taken away = %d %v, want invalid_scope", ops, code, body)
	}
}
