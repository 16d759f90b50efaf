package authority_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage/bolt"
)

// accessClaims is what a verifier reads from a Signet access token.
type accessClaims struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	Aud      string `json:"aud"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Jti      string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Tenant   string `json:"tenant"`
}

func tokenHeader(t *testing.T, tok string) (kid, alg, typ string) {
	t.Helper()
	msg, err := jws.ParseString(tok)
	if err != nil {
		t.Fatalf("jws.ParseString: %v", err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	return h.KeyID(), h.Algorithm().String(), h.Type()
}

// TestEndToEnd_ClientCredentials_Rotation: golang.org/x/oauth2 gets tokens,
// go-oidc verifies them through discovery and the published JWKS (issuer
// and audience checked), before and after an admin rotation, for each
// algorithm.
func TestEndToEnd_ClientCredentials_Rotation(t *testing.T) {
	e := newEnv(t, envOptions{minAge: time.Minute})
	ctx := t.Context()
	const aud = "https://api.example.com"

	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: aud, Now: e.clock.Now})

	type issued struct{ alg, kid, tok string }
	secrets := map[string]string{}
	get := func(alg string, style oauth2.AuthStyle) issued {
		t.Helper()
		cc := clientcredentials.Config{
			ClientID: "svc-" + alg, ClientSecret: secrets[alg], TokenURL: e.issuer + "/oauth2/token",
			Scopes: []string{"read"}, AuthStyle: style,
		}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("%s: Token: %v", alg, err)
		}
		if tok.TokenType != "Bearer" || tok.RefreshToken != "" {
			t.Errorf("%s: token_type %q refresh %q, want Bearer and none", alg, tok.TokenType, tok.RefreshToken)
		}
		kid, hAlg, typ := tokenHeader(t, tok.AccessToken)
		if hAlg != alg || typ != "at+jwt" {
			t.Errorf("%s: header alg %q typ %q, want %s at+jwt", alg, hAlg, typ, alg)
		}
		return issued{alg, kid, tok.AccessToken}
	}
	verify := func(it issued) {
		t.Helper()
		idt, err := verifier.Verify(ctx, it.tok)
		if err != nil {
			t.Fatalf("%s kid %s: Verify: %v", it.alg, it.kid, err)
		}
		var c accessClaims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now().Unix()
		want := accessClaims{Iss: e.issuer, Sub: "svc-" + it.alg, Aud: aud, ClientID: "svc-" + it.alg, Scope: "read", Tenant: "acme", Iat: c.Iat, Nbf: c.Iat, Exp: c.Iat + 600, Jti: c.Jti}
		if c != want || len(c.Jti) < 22 || c.Iat > now || c.Iat < now-3600 {
			t.Errorf("%s claims = %+v, want %+v", it.alg, c, want)
		}
	}

	algs := []string{"RS256", "ES256", "EdDSA"}
	for _, alg := range algs {
		secrets[alg] = e.createClient(clients.Client{
			ID: "svc-" + alg, Scopes: []string{"read", "write"}, DefaultScopes: []string{"read"},
			Audiences: []string{aud}, SigningAlg: alg, AccessTokenTTL: clients.Duration(10 * time.Minute),
			ExtraClaims: map[string]json.RawMessage{"tenant": json.RawMessage(`"acme"`)},
		})
	}
	var before []issued
	for _, alg := range algs {
		it := get(alg, oauth2.AuthStyleInHeader)
		verify(it)
		before = append(before, it)
		verify(get(alg, oauth2.AuthStyleInParams))
	}

	// A rotation too early is refused with 409; forced, it goes through.
	adm := e.adminToken()
	e.clock.Add(10 * time.Second)
	if status, _, body := e.admin(http.MethodPost, "/admin/keys/rotate", adm, nil); status != http.StatusConflict || body["error"] != "conflict" {
		t.Fatalf("rotate too early = %d %v, want 409 conflict", status, body)
	}
	status, _, body := e.admin(http.MethodPost, "/admin/keys/rotate?force=true", adm, nil)
	if status != http.StatusOK {
		t.Fatalf("rotate = %d %v, want 200", status, body)
	}
	e.clock.Add(time.Minute)

	for i, alg := range algs {
		after := get(alg, oauth2.AuthStyleInHeader)
		if after.kid == before[i].kid {
			t.Errorf("%s: kid after rotation = %s, same as before", alg, after.kid)
		}
		verify(before[i]) // old kid, still published as retired
		verify(after)     // new kid, published while pending
	}

	// The audit trail names the actor and both active key sets.
	status, _, body = e.admin(http.MethodGet, "/admin/audit?limit=2", adm, nil)
	if status != http.StatusOK {
		t.Fatalf("audit = %d %v", status, body)
	}
	evs := body["events"].([]any)
	last := evs[0].(map[string]any)
	if last["action"] != "keys.rotate" || last["actor"] != "admin" || last["outcome"] != "ok" ||
		!strings.Contains(last["detail"].(string), before[0].kid) {
		t.Errorf("last audit event = %v, want keys.rotate by admin, ok, naming %s", last, before[0].kid)
	}
	if prev := evs[1].(map[string]any); prev["outcome"] != "error" || !strings.Contains(prev["detail"].(string), "conflict") {
		t.Errorf("previous audit event = %v, want the refused rotation", prev)
	}
}

// TestDiscovery: both well-known documents are RFC 8414 metadata naming
// this issuer byte for byte and the endpoints a client needs.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256", "RS256"}})
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+path, nil)
		status, hdr, md := e.do(req)
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s = %d %s", path, status, hdr.Get("Content-Type"))
		}
		want := map[string]any{
			"issuer":                                         e.issuer,
			"token_endpoint":                                 e.issuer + "/oauth2/token",
			"jwks_uri":                                       e.issuer + "/.well-known/jwks.json",
			"grant_types_supported":                          []any{"client_credentials", "password", "refresh_token", "authorization_code", "urn:ietf:params:oauth:grant-type:device_code"},
			"device_authorization_endpoint":                  e.issuer + "/oauth2/device_authorization",
			"response_types_supported":                       []any{"code"},
			"token_endpoint_auth_methods_supported":          []any{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
			"revocation_endpoint":                            e.issuer + "/oauth2/revoke",
			"introspection_endpoint":                         e.issuer + "/oauth2/introspect",
			"revocation_feed":                                e.issuer + "/oauth2/revocations",
			"revocation_endpoint_auth_methods_supported":     []any{"client_secret_basic", "client_secret_post", "private_key_jwt"},
			"introspection_endpoint_auth_methods_supported":  []any{"client_secret_basic", "client_secret_post", "private_key_jwt"},
			"scopes_supported":                               []any{"openid", "profile", "email", "offline_access", "signet:admin", "read", "write"},
			"id_token_signing_alg_values_supported":          []any{"RS256", "ES256"},
			"authorization_endpoint":                         e.issuer + "/oauth2/authorize",
			"userinfo_endpoint":                              e.issuer + "/oauth2/userinfo",
			"end_session_endpoint":                           e.issuer + "/oauth2/logout",
			"subject_types_supported":                        []any{"public"},
			"code_challenge_methods_supported":               []any{"S256"},
			"authorization_response_iss_parameter_supported": true,
		}
		for k, v := range want {
			got, _ := json.Marshal(md[k])
			w, _ := json.Marshal(v)
			if string(got) != string(w) {
				t.Errorf("GET %s: %s = %s, want %s", path, k, got, w)
			}
		}
	}
	// The keys it points at are fetchable.
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/.well-known/jwks.json", nil)
	if status, _, set := e.do(req); status != http.StatusOK || len(set["keys"].([]any)) < 4 {
		t.Fatalf("jwks = %d %v", status, set)
	}
	// Cover the default algorithm choice: RS256 whenever it is live.
	secret := e.createClient(clients.Client{ID: "default-alg", Audiences: []string{"a"}})
	if _, alg, _ := tokenHeader(t, e.token("default-alg", secret, nil)); alg != "RS256" {
		t.Errorf("default alg = %s, want RS256", alg)
	}
}

// TestEnsureDemoClient: a demo client on an empty store only, and it can
// get a token at once.
func TestEnsureDemoClient(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "demo.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clients := clients.New(st, clients.Options{Algorithms: []string{"ES256"}})
	id, secret, created, err := authority.EnsureDemoClient(t.Context(), clients)
	if err != nil || !created || id != authority.DemoClientID || len(secret) != 43 {
		t.Fatalf("EnsureDemoClient = %q %d-char secret %v %v, want the demo client", id, len(secret), created, err)
	}
	c, err := clients.Get(t.Context(), id)
	if err != nil || c.SigningAlg != "ES256" || c.DefaultAudience != authority.DemoAudience || strings.Join(c.DefaultScopes, " ") != authority.DemoScope {
		t.Errorf("demo client = %+v %v", c, err)
	}
	if _, _, created, err := authority.EnsureDemoClient(t.Context(), clients); created || err != nil {
		t.Errorf("second EnsureDemoClient = created %v, %v; want nothing created", created, err)
	}
}
