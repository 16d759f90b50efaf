package authority_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
)

// mint signs claims with key under the given header, for tokens the
// server never issued.
func mint(t *testing.T, key jwk.Key, typ string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, key.KeyID())
	_ = hdr.Set(jws.TypeKey, typ)
	tok, err := jws.Sign(payload, jws.WithKey(key.Algorithm(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// compact builds header.payload.signature from JSON parts and raw signature.
func compact(hdr, claims map[string]any, sign func(in []byte) []byte) string {
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
}

func hs256(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

// TestAdmin_Refusals: every kind of bad admin credential is refused with
// 401 (or 403 for a valid token without the scope), and requests that a
// browser could forge cross-site are refused.
func TestAdmin_Refusals(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"RS256", "ES256"}})
	other := newEnv(t, envOptions{algs: []string{"RS256"}})

	readerSecret := e.createClient(clients.Client{ID: "reader", Scopes: []string{"read"}, Audiences: []string{authority.AdminAudience}})
	wideSecret := e.createClient(clients.Client{ID: "wide", Scopes: []string{authority.AdminScope}, Audiences: []string{authority.AdminAudience, "api"}})
	goneSecret := e.createClient(clients.Client{ID: "gone", Scopes: []string{authority.AdminScope}, Audiences: []string{authority.AdminAudience}})
	goneTok := e.token("gone", goneSecret, url.Values{"scope": {authority.AdminScope}})
	if err := e.srv.Clients().Delete(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}

	rsKey, err := e.keys.SigningKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": e.issuer, "sub": "admin", "aud": authority.AdminAudience, "client_id": "admin",
			"scope": authority.AdminScope, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": "x"}
		if mod != nil {
			mod(c)
		}
		return c
	}
	pub, err := rsKey.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	pubJSON, _ := json.Marshal(pub)
	var rawPub any
	_ = pub.Raw(&rawPub)
	der, _ := x509.MarshalPKIXPublicKey(rawPub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hdr := func(alg string) map[string]any {
		return map[string]any{"alg": alg, "kid": rsKey.KeyID(), "typ": "at+jwt"}
	}

	tests := []struct {
		name   string
		auth   string
		status int
		code   string
	}{
		{"no token", "", 401, "unauthorized"},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+e.adminSecret)), 401, "invalid_token"},
		{"garbage", "Bearer not-a-token", 401, "invalid_token"},
		{"client secret as bearer", "Bearer " + e.adminSecret, 401, "invalid_token"},
		{"token from another signet", "Bearer " + other.adminToken(), 401, "invalid_token"},
		{"other issuer, our key", "Bearer " + mint(t, rsKey, "at+jwt", claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), 401, "invalid_token"},
		{"issuer with trailing slash", "Bearer " + mint(t, rsKey, "at+jwt", claims(func(c map[string]any) { c["iss"] = e.issuer + "/" })), 401, "invalid_token"},
		{"expired", "Bearer " + mint(t, rsKey, "at+jwt", claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), 401, "invalid_token"},
		{"no exp", "Bearer " + mint(t, rsKey, "at+jwt", claims(func(c map[string]any) { delete(c, "exp") })), 401, "invalid_token"},
		{"not yet valid", "Bearer " + mint(t, rsKey, "at+jwt", claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })), 401, "invalid_token"},
		{"wrong audience (minted)", "Bearer " + mint(t, rsKey, "at+jwt", claims(func(c map[string]any) { c["aud"] = "api" })), 401, "invalid_token"},
		{"wrong audience (issued)", "Bearer " + e.token("wide", wideSecret, url.Values{"audience": {"api"}}), 401, "invalid_token"},
		{"typ JWT", "Bearer " + mint(t, rsKey, "JWT", claims(nil)), 401, "invalid_token"},
		{"alg none", "Bearer " + compact(map[string]any{"alg": "none", "kid": rsKey.KeyID(), "typ": "at+jwt"}, claims(nil), func([]byte) []byte { return nil }), 401, "invalid_token"},
		{"alg none without kid", "Bearer " + compact(map[string]any{"alg": "none", "typ": "at+jwt"}, claims(nil), func([]byte) []byte { return nil }), 401, "invalid_token"},
		{"HS256 with public JWK as secret", "Bearer " + compact(hdr("HS256"), claims(nil), hs256(pubJSON)), 401, "invalid_token"},
		{"HS256 with public PEM as secret", "Bearer " + compact(hdr("HS256"), claims(nil), hs256(pubPEM)), 401, "invalid_token"},
		{"unknown kid", "Bearer " + compact(map[string]any{"alg": "RS256", "kid": "../../etc/passwd", "typ": "at+jwt"}, claims(nil), hs256(nil)), 401, "invalid_token"},
		{"JSON serialization", "Bearer " + `{"payload":"e30","signatures":[]}`, 401, "invalid_token"},
		{"oversized", "Bearer " + strings.Repeat("a.", 3000) + "a", 401, "invalid_token"},
		{"deleted client", "Bearer " + goneTok, 401, "invalid_token"},
		{"no admin scope", "Bearer " + e.token("reader", readerSecret, nil), 403, "insufficient_scope"},
		{"scope claim without registered scope", "Bearer " + mint(t, rsKey, "at+jwt", claims(func(c map[string]any) {
			c["client_id"] = "reader"
			maps.Copy(c, e.instanceClaim("reader", readerSecret))
		})), 403, "insufficient_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.issuer+"/admin/keys", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			status, hdr, body := e.do(req)
			if status != tc.status || body["error"] != tc.code {
				t.Fatalf("GET /admin/keys = %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), `Bearer realm="signet-admin"`) {
				t.Errorf("WWW-Authenticate = %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}

	// A good token works, but not for forgeable requests.
	adm := e.adminToken()
	if status, _, body := e.admin(http.MethodGet, "/admin/keys", adm, nil); status != http.StatusOK {
		t.Fatalf("GET /admin/keys with admin token = %d %v", status, body)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/admin/keys/rotate?force=true", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+adm)
	req.Header.Set("Content-Type", "text/plain")
	if status, _, _ := e.do(req); status != http.StatusUnsupportedMediaType {
		t.Errorf("rotate with text/plain = %d, want 415", status)
	}
	req, _ = http.NewRequest(http.MethodPost, e.issuer+"/admin/clients", strings.NewReader("client_id=x"))
	req.Header.Set("Authorization", "Bearer "+adm)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, _, _ := e.do(req); status != http.StatusUnsupportedMediaType {
		t.Errorf("create client with a form = %d, want 415", status)
	}
	if status, _, body := e.admin(http.MethodGet, "/admin/keys/rotate", adm, nil); status != http.StatusMethodNotAllowed {
		t.Errorf("GET rotate = %d %v, want 405", status, body)
	}
	big := map[string]string{"client_id": strings.Repeat("x", 70<<10)}
	if status, _, _ := e.admin(http.MethodPost, "/admin/clients", adm, big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body = %d, want 413", status)
	}
}

// TestAdmin_ClientsAndKeys drives the admin API: client CRUD with the
// token endpoint seeing each change at once, key revocation, the audit log.
func TestAdmin_ClientsAndKeys(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	adm := e.adminToken()

	status, _, body := e.admin(http.MethodPost, "/admin/clients", adm, map[string]any{
		"client_id": "svc", "scopes": []string{"read"}, "audiences": []string{"api"}, "access_token_ttl": "5m",
		"extra_claims": map[string]any{"team": "payments"},
	})
	if status != http.StatusCreated || body["client_id"] != "svc" || body["client_secret"] == nil || body["access_token_ttl"] != "5m0s" {
		t.Fatalf("create = %d %v", status, body)
	}
	secret := body["client_secret"].(string)
	claims := decodePayload(t, e.token("svc", secret, nil))
	if claims["team"] != "payments" || claims["exp"].(float64)-claims["iat"].(float64) != 300 {
		t.Errorf("claims = %v, want team and a 5m lifetime", claims)
	}

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		want   string // substring of error_description
	}{
		{"duplicate id", http.MethodPost, "/admin/clients", map[string]any{"client_id": "svc", "audiences": []string{"a"}}, 409, ""},
		{"unknown field", http.MethodPost, "/admin/clients", map[string]any{"client_id": "x", "audiences": []string{"a"}, "secret": "mine"}, 400, "unknown field"},
		{"bad id", http.MethodPost, "/admin/clients", map[string]any{"client_id": "a b", "audiences": []string{"a"}}, 400, "client_id"},
		{"reserved extra claim", http.MethodPost, "/admin/clients", map[string]any{"client_id": "x", "audiences": []string{"a"}, "extra_claims": map[string]any{"sub": "root"}}, 400, "extra_claims"},
		{"ttl above max", http.MethodPost, "/admin/clients", map[string]any{"client_id": "x", "audiences": []string{"a"}, "access_token_ttl": "2h"}, 400, "access_token_ttl"},
		{"alg not live", http.MethodPost, "/admin/clients", map[string]any{"client_id": "x", "audiences": []string{"a"}, "signing_alg": "HS256"}, 400, "signing_alg"},
		{"default audience not allowed", http.MethodPatch, "/admin/clients/svc", map[string]any{"default_audience": "other"}, 400, "default_audience"},
		{"patch unknown client", http.MethodPatch, "/admin/clients/nobody", map[string]any{"disabled": true}, 404, ""},
		{"get unknown client", http.MethodGet, "/admin/clients/nobody", nil, 404, ""},
		{"revoke unknown kid", http.MethodPost, "/admin/keys/nokid/revoke", nil, 404, ""},
		{"bad audit limit", http.MethodGet, "/admin/audit?limit=0", nil, 400, "limit"},
		{"bad audit since", http.MethodGet, "/admin/audit?since=yesterday", nil, 400, "since"},
		{"bad audit cursor", http.MethodGet, "/admin/audit?cursor=..%2Fx", nil, 400, "cursor"},
	} {
		status, _, body := e.admin(tc.method, tc.path, adm, tc.body)
		if d, _ := body["error_description"].(string); status != tc.status || !strings.Contains(d, tc.want) {
			t.Errorf("%s: %s %s = %d %v, want %d mentioning %q", tc.name, tc.method, tc.path, status, body, tc.status, tc.want)
		}
	}

	form := url.Values{"grant_type": {"client_credentials"}}
	if status, _, body := e.admin(http.MethodPatch, "/admin/clients/svc", adm, map[string]any{"disabled": true}); status != http.StatusOK || body["disabled"] != true {
		t.Fatalf("disable = %d %v", status, body)
	}
	if status, _, _ := e.tokenRequest(form, "svc", secret); status != http.StatusUnauthorized {
		t.Errorf("token for a disabled client = %d, want 401", status)
	}
	e.admin(http.MethodPatch, "/admin/clients/svc", adm, map[string]any{"disabled": false})
	status, _, body = e.admin(http.MethodPost, "/admin/clients/svc/secret", adm, map[string]any{"keep_previous": "0s"})
	if status != http.StatusOK || body["client_secret"] == nil {
		t.Fatalf("rotate secret = %d %v", status, body)
	}
	if status, _, _ := e.tokenRequest(form, "svc", secret); status != http.StatusUnauthorized {
		t.Errorf("old secret = %d, want 401", status)
	}
	secret = body["client_secret"].(string)
	if status, _, _ := e.tokenRequest(form, "svc", secret); status != http.StatusOK {
		t.Errorf("new secret = %d, want 200", status)
	}
	status, _, body = e.admin(http.MethodGet, "/admin/clients", adm, nil)
	if status != http.StatusOK || len(body["clients"].([]any)) != 2 {
		t.Fatalf("list = %d %v", status, body)
	}
	if b, _ := json.Marshal(body); strings.Contains(string(b), "secret_sha256") {
		t.Errorf("client list shows secret hashes: %s", b)
	}
	if status, _, _ := e.admin(http.MethodDelete, "/admin/clients/svc", adm, nil); status != http.StatusNoContent {
		t.Errorf("delete = %d, want 204", status)
	}
	if status, _, _ := e.tokenRequest(form, "svc", secret); status != http.StatusUnauthorized {
		t.Errorf("token for a deleted client = %d, want 401", status)
	}

	// Revoking the active key: it leaves the key list as revoked, a new
	// key signs, and the admin token (signed by the revoked key) stops working.
	status, _, body = e.admin(http.MethodGet, "/admin/keys", adm, nil)
	if status != http.StatusOK {
		t.Fatalf("keys = %d %v", status, body)
	}
	var active string
	for _, k := range body["keys"].([]any) {
		k := k.(map[string]any)
		if k["state"] == "active" {
			active = k["kid"].(string)
		}
		if k["d"] != nil || k["private"] != nil {
			t.Errorf("key list shows private material: %v", k)
		}
	}
	if status, _, body := e.admin(http.MethodPost, "/admin/keys/"+active+"/revoke", adm, nil); status != http.StatusOK {
		t.Fatalf("revoke = %d %v", status, body)
	}
	if status, _, _ := e.admin(http.MethodGet, "/admin/keys", adm, nil); status != http.StatusUnauthorized {
		t.Errorf("token signed by a revoked key = %d, want 401", status)
	}
	adm = e.adminToken()
	if kid, _, _ := tokenHeader(t, adm); kid == active {
		t.Errorf("new token signed by revoked key %s", kid)
	}

	status, _, body = e.admin(http.MethodGet, "/admin/audit?limit=1000", adm, nil)
	if status != http.StatusOK {
		t.Fatalf("audit = %d %v", status, body)
	}
	var actions []string
	for _, ev := range body["events"].([]any) {
		ev := ev.(map[string]any)
		if ev["outcome"] == "ok" {
			actions = append(actions, fmt.Sprint(ev["action"], " ", ev["target"]))
		}
	}
	// The key manager records its own changes, the first key set included.
	want := "keys.revoke " + active + ",clients.delete svc,clients.rotate_secret svc,clients.update svc,clients.update svc,clients.create svc,keys.ensure <nil>"
	if got := strings.Join(actions, ","); got != want {
		t.Errorf("audit (newest first) = %s, want %s", got, want)
	}
}

// TestSecrets_NotInLogsOrStore: no client secret and no issued token
// appears in the debug logs of a whole session or in the raw bolt file.
func TestSecrets_NotInLogsOrStore(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}})
	adm := e.adminToken()
	secrets := []string{e.adminSecret}
	tokens := []string{adm}
	_, _, body := e.admin(http.MethodPost, "/admin/clients", adm, map[string]any{"client_id": "svc", "audiences": []string{"api"}})
	secrets = append(secrets, body["client_secret"].(string))
	_, _, body = e.admin(http.MethodPost, "/admin/clients/svc/secret", adm, map[string]any{"keep_previous": "1h"})
	secrets = append(secrets, body["client_secret"].(string))
	for _, s := range secrets[1:] {
		tokens = append(tokens, e.token("svc", s, nil))
		// failures log too: a wrong secret close to the right one
		e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "svc", s+"x")
		e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {s}, "scope": {"nope"}}, "", "")
	}
	db, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"path":"/oauth2/token"`) {
		t.Fatalf("logs do not show the token requests: the test is not looking at them")
	}
	for _, s := range append(secrets, tokens...) {
		for _, part := range append([]string{s}, strings.Split(s, ".")[min(1, strings.Count(s, ".")):]...) {
			if strings.Contains(logs, part) {
				t.Errorf("logs contain a secret or token part %.12s…", part)
			}
			if strings.Contains(string(db), part) {
				t.Errorf("bolt file contains a secret or token part %.12s…", part)
			}
		}
	}
}
