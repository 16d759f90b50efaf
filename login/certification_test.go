package login_test

import (
	"context"
	"encoding/json"
	"github.com/signet-auth/signet/internal/signettest"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// authzQuery is a standard code-flow request for client web with PKCE.
func authzQuery(challenge string, extra url.Values) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid"}, "state": {"s1"}, "nonce": {"n1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		if v == nil {
			delete(q, k)
			continue
		}
		q[k] = v
	}
	return q
}

// errorRedirect checks that p redirects to the client with error code and
// the state and iss of RFC 6749 §4.1.2.1 and RFC 9207.
func errorRedirect(t *testing.T, e *env, p page, code string) {
	t.Helper()
	if p.Location == nil || p.Location.Host != "app.example" {
		t.Fatalf("want a redirect to the client with %s, got %d %v\n%s", code, p.Status, p.Location, p.Body)
	}
	q := p.Location.Query()
	if q.Get("error") != code || q.Get("state") != "s1" || q.Get("iss") != e.issuer {
		t.Fatalf("error redirect = %v, want error=%s state=s1 iss", q, code)
	}
}

func userinfoReq(t *testing.T, e *env, method, at string, body bool) (int, map[string]any) {
	t.Helper()
	var req *http.Request
	if body {
		req, _ = http.NewRequest(method, e.issuer+"/oauth2/userinfo", strings.NewReader(url.Values{"access_token": {at}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, _ = http.NewRequest(method, e.issuer+"/oauth2/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+at)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestCertification mirrors the OpenID Foundation's Basic OP, Config OP
// and RP-Initiated Logout OP test modules that apply to a code-flow
// provider; each row is named after the module it mirrors.
func TestCertification(t *testing.T) {
	rows := []struct {
		module string
		run    func(t *testing.T, e *env, secret string)
	}{
		{"oidcc-server", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, nil)
			c := signettest.Claims(t, tr.str("id_token"))
			for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid"} {
				if _, ok := c[k]; !ok {
					t.Errorf("ID token lacks %s", k)
				}
			}
			if tr.str("token_type") != "Bearer" || c["aud"] != "web" || c["iss"] != e.issuer {
				t.Errorf("token response %s", tr.raw)
			}
		}},
		{"oidcc-response-type-missing", func(t *testing.T, e *env, secret string) {
			_, ch := signettest.PKCE()
			errorRedirect(t, e, e.browser().Authorize(authzQuery(ch, url.Values{"response_type": nil})), "invalid_request")
		}},
		{"oidcc-idtoken-signature", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, nil)
			ctx := context.Background()
			p, err := oidc.NewProvider(ctx, e.issuer)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Verifier(&oidc.Config{ClientID: "web", Now: e.clock.Now}).Verify(ctx, tr.str("id_token")); err != nil {
				t.Fatal(err)
			}
			tampered := tr.str("id_token")
			tampered = tampered[:len(tampered)-4] + "AAAA"
			if _, err := p.Verifier(&oidc.Config{ClientID: "web", Now: e.clock.Now}).Verify(ctx, tampered); err == nil {
				t.Fatal("a tampered ID token verified")
			}
		}},
		{"oidcc-userinfo-get", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, nil)
			if st, m := userinfoReq(t, e, http.MethodGet, tr.str("access_token"), false); st != 200 || m["sub"] != signettest.Claims(t, tr.str("id_token"))["sub"] {
				t.Fatalf("userinfo = %d %v", st, m)
			}
		}},
		{"oidcc-userinfo-post-header", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, nil)
			if st, m := userinfoReq(t, e, http.MethodPost, tr.str("access_token"), false); st != 200 || m["sub"] != e.alice.ID {
				t.Fatalf("userinfo = %d %v", st, m)
			}
		}},
		{"oidcc-userinfo-post-body", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, nil)
			if st, m := userinfoReq(t, e, http.MethodPost, tr.str("access_token"), true); st != 200 || m["sub"] != e.alice.ID {
				t.Fatalf("userinfo = %d %v", st, m)
			}
		}},
		{"oidcc-ensure-request-without-nonce-succeeds-for-code-flow", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, url.Values{"nonce": nil})
			if _, ok := signettest.Claims(t, tr.str("id_token"))["nonce"]; ok {
				t.Fatal("nonce claim without a nonce in the request")
			}
		}},
		{"oidcc-scope-profile", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, url.Values{"scope": {"openid profile"}})
			_, m := userinfoReq(t, e, http.MethodGet, tr.str("access_token"), false)
			if m["name"] != "Alice Liddell" || m["preferred_username"] != "alice" || m["email"] != nil {
				t.Fatalf("userinfo = %v", m)
			}
		}},
		{"oidcc-scope-email", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, url.Values{"scope": {"openid email"}})
			_, m := userinfoReq(t, e, http.MethodGet, tr.str("access_token"), false)
			if m["email"] != "alice@example.com" || m["email_verified"] != true || m["name"] != nil {
				t.Fatalf("userinfo = %v", m)
			}
		}},
		{"oidcc-scope-all", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, url.Values{"scope": {"openid profile email offline_access"}})
			_, m := userinfoReq(t, e, http.MethodGet, tr.str("access_token"), false)
			if m["email"] != "alice@example.com" || m["name"] != "Alice Liddell" {
				t.Fatalf("userinfo = %v", m)
			}
		}},
		{"oidcc-alternate-happy-flow", func(t *testing.T, e *env, secret string) {
			// Scopes in another order, client_secret_post, no redirect_uri
			// at the token endpoint's discretion: still one flow.
			b := e.browser()
			v, ch := signettest.PKCE()
			p := b.login(b.Authorize(authzQuery(ch, url.Values{"scope": {"email openid profile"}})), "alice", alicePassword)
			cb := codeFrom(t, p)
			tr := e.token("web", "", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")},
				"redirect_uri": {"https://app.example/cb"}, "code_verifier": {v}, "client_secret": {secret}})
			if tr.status != 200 || tr.str("id_token") == "" {
				t.Fatalf("client_secret_post redemption = %d %s", tr.status, tr.raw)
			}
		}},
		{"oidcc-display-page", func(t *testing.T, e *env, secret string) {
			e.flow(e.browser(), "web", secret, url.Values{"display": {"page"}})
		}},
		{"oidcc-display-popup", func(t *testing.T, e *env, secret string) {
			e.flow(e.browser(), "web", secret, url.Values{"display": {"popup"}})
		}},
		{"oidcc-prompt-login", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr1, _ := e.flow(b, "web", secret, nil)
			e.clock.Add(3 * time.Second)
			_, ch := signettest.PKCE()
			p := b.Authorize(authzQuery(ch, url.Values{"prompt": {"login"}}))
			if !strings.Contains(p.Body, `id="password"`) {
				t.Fatalf("prompt=login with a session did not show the login form: %d %v", p.Status, p.Location)
			}
			tr2, _ := e.flow(b, "web", secret, url.Values{"prompt": {"login"}})
			if signettest.Claims(t, tr2.str("id_token"))["auth_time"].(float64) <= signettest.Claims(t, tr1.str("id_token"))["auth_time"].(float64) {
				t.Fatal("auth_time did not move")
			}
		}},
		{"oidcc-prompt-none-not-logged-in", func(t *testing.T, e *env, secret string) {
			_, ch := signettest.PKCE()
			errorRedirect(t, e, e.browser().Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})), "login_required")
		}},
		{"oidcc-prompt-none-logged-in", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			e.flow(b, "web", secret, nil)
			_, ch := signettest.PKCE()
			codeFrom(t, b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})))
		}},
		{"oidcc-max-age-1", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr1, _ := e.flow(b, "web", secret, nil)
			e.clock.Add(2 * time.Second)
			_, ch := signettest.PKCE()
			if p := b.Authorize(authzQuery(ch, url.Values{"max_age": {"1"}})); !strings.Contains(p.Body, `id="password"`) {
				t.Fatal("max_age=1 after 2s did not ask for the password")
			}
			tr2, _ := e.flow(b, "web", secret, url.Values{"max_age": {"1"}})
			at := signettest.Claims(t, tr2.str("id_token"))["auth_time"]
			if at == nil || at.(float64) <= signettest.Claims(t, tr1.str("id_token"))["auth_time"].(float64) {
				t.Fatalf("auth_time = %v", at)
			}
		}},
		{"oidcc-max-age-10000", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr1, _ := e.flow(b, "web", secret, nil)
			e.clock.Add(5 * time.Second)
			tr2, _ := e.flow(b, "web", secret, url.Values{"max_age": {"10000"}})
			if signettest.Claims(t, tr2.str("id_token"))["auth_time"] != signettest.Claims(t, tr1.str("id_token"))["auth_time"] {
				t.Fatal("max_age=10000 logged in again")
			}
		}},
		{"oidcc-ensure-request-with-unknown-parameter-succeeds", func(t *testing.T, e *env, secret string) {
			e.flow(e.browser(), "web", secret, url.Values{"extra": {"foobar"}})
		}},
		{"oidcc-id-token-hint", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			e.clock.Add(30 * time.Minute) // the hint has expired (15 min): still accepted
			e.flow(b, "web", secret, url.Values{"prompt": {"none"}, "id_token_hint": {tr.str("id_token")}})
		}},
		{"oidcc-login-hint", func(t *testing.T, e *env, secret string) {
			_, ch := signettest.PKCE()
			p := e.browser().Authorize(authzQuery(ch, url.Values{"login_hint": {"alice"}}))
			if !strings.Contains(p.Body, `value="alice" autocomplete="username"`) {
				t.Fatalf("login_hint not pre-filled:\n%s", p.Body)
			}
		}},
		{"oidcc-ui-locales", func(t *testing.T, e *env, secret string) {
			e.flow(e.browser(), "web", secret, url.Values{"ui_locales": {"se"}})
		}},
		{"oidcc-claims-locales", func(t *testing.T, e *env, secret string) {
			e.flow(e.browser(), "web", secret, url.Values{"claims_locales": {"se"}})
		}},
		{"oidcc-ensure-request-with-acr-values-succeeds", func(t *testing.T, e *env, secret string) {
			e.flow(e.browser(), "web", secret, url.Values{"acr_values": {"1 2"}})
		}},
		{"oidcc-codereuse", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v); tr.status != 200 {
				t.Fatalf("first = %d %s", tr.status, tr.raw)
			}
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v); tr.status != 400 || tr.str("error") != "invalid_grant" {
				t.Fatalf("second = %d %s", tr.status, tr.raw)
			}
		}},
		{"oidcc-codereuse-30seconds", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, url.Values{"scope": {"openid offline_access"}})), "alice", alicePassword))
			tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v)
			if tr.status != 200 || tr.str("refresh_token") == "" {
				t.Fatalf("first = %d %s", tr.status, tr.raw)
			}
			e.clock.Add(30 * time.Second)
			if r := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v); r.status != 400 || r.str("error") != "invalid_grant" {
				t.Fatalf("reuse = %d %s", r.status, r.raw)
			}
			if st, _ := userinfoReq(t, e, http.MethodGet, tr.str("access_token"), false); st != 401 {
				t.Errorf("access token from a reused code: userinfo %d, want 401", st)
			}
			if r := e.token("web", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}); r.status != 400 {
				t.Errorf("refresh token from a reused code = %d %s", r.status, r.raw)
			}
		}},
		{"oidcc-ensure-registered-redirect-uri", func(t *testing.T, e *env, secret string) {
			_, ch := signettest.PKCE()
			p := e.browser().Authorize(authzQuery(ch, url.Values{"redirect_uri": {"https://app.example/cb/other"}}))
			if p.Location != nil || p.Status != 400 || !strings.Contains(p.Body, "not registered") {
				t.Fatalf("unregistered redirect_uri = %d %v", p.Status, p.Location)
			}
		}},
		{"oidcc-ensure-post-request-succeeds", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			v, ch := signettest.PKCE()
			p := b.Post(e.issuer+"/oauth2/authorize", authzQuery(ch, nil))
			cb := codeFrom(t, b.login(p, "alice", alicePassword))
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v); tr.status != 200 {
				t.Fatalf("redeem = %d %s", tr.status, tr.raw)
			}
		}},
		{"oidcc-refresh-token", func(t *testing.T, e *env, secret string) {
			tr, _ := e.flow(e.browser(), "web", secret, url.Values{"scope": {"openid offline_access"}})
			e.clock.Add(time.Minute)
			r := e.token("web", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}})
			if r.status != 200 || r.str("id_token") == "" || r.str("refresh_token") == tr.str("refresh_token") {
				t.Fatalf("refresh = %d %s", r.status, r.raw)
			}
			c1, c2 := signettest.Claims(t, tr.str("id_token")), signettest.Claims(t, r.str("id_token"))
			if c1["sub"] != c2["sub"] || c1["auth_time"] != c2["auth_time"] || c1["aud"] != c2["aud"] {
				t.Errorf("refreshed ID token %v vs %v", c2, c1)
			}
			// Reusing the old refresh token revokes the family.
			if r2 := e.token("web", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}); r2.status != 400 {
				t.Fatalf("reuse = %d", r2.status)
			}
			if r3 := e.token("web", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}}); r3.status != 400 {
				t.Fatalf("family still alive after reuse: %d", r3.status)
			}
		}},
		{"oidcc-ensure-request-with-valid-pkce-succeeds", func(t *testing.T, e *env, secret string) {
			e.flow(e.browser(), "web", secret, nil)
		}},
		{"oidcc-discovery-endpoint-verification", func(t *testing.T, e *env, secret string) {
			resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var md map[string]any
			if err := json.Unmarshal(b, &md); err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]any{
				"issuer": e.issuer, "authorization_endpoint": e.issuer + "/oauth2/authorize", "token_endpoint": e.issuer + "/oauth2/token",
				"userinfo_endpoint": e.issuer + "/oauth2/userinfo", "jwks_uri": e.issuer + "/.well-known/jwks.json",
				"end_session_endpoint": e.issuer + "/oauth2/logout", "authorization_response_iss_parameter_supported": true,
			} {
				if md[k] != want {
					t.Errorf("%s = %v, want %v", k, md[k], want)
				}
			}
			list := func(k string) []string {
				var out []string
				for _, v := range md[k].([]any) {
					out = append(out, v.(string))
				}
				return out
			}
			if got := list("response_types_supported"); !slices.Equal(got, []string{"code"}) {
				t.Errorf("response_types_supported = %v", got)
			}
			if got := list("subject_types_supported"); !slices.Equal(got, []string{"public"}) {
				t.Errorf("subject_types_supported = %v", got)
			}
			if got := list("id_token_signing_alg_values_supported"); got[0] != "RS256" {
				t.Errorf("id_token_signing_alg_values_supported = %v", got)
			}
			if got := list("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
				t.Errorf("code_challenge_methods_supported = %v", got)
			}
			for _, s := range []string{"openid", "profile", "email", "offline_access"} {
				if !slices.Contains(list("scopes_supported"), s) {
					t.Errorf("scopes_supported lacks %s", s)
				}
			}
			for _, s := range []string{"sub", "iss", "auth_time", "name", "email", "email_verified"} {
				if !slices.Contains(list("claims_supported"), s) {
					t.Errorf("claims_supported lacks %s", s)
				}
			}
			if !slices.Contains(list("token_endpoint_auth_methods_supported"), "none") || !slices.Contains(list("grant_types_supported"), "authorization_code") {
				t.Errorf("auth methods %v, grants %v", list("token_endpoint_auth_methods_supported"), list("grant_types_supported"))
			}
		}},
		{"oidcc-rp-initiated-logout", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			p := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {tr.str("id_token")},
				"post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"ls"}}.Encode())
			if p.Location == nil || p.Location.String() != "https://app.example/bye?state=ls" {
				t.Fatalf("logout = %d %v", p.Status, p.Location)
			}
			_, ch := signettest.PKCE()
			errorRedirect(t, e, b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})), "login_required")
		}},
		{"oidcc-rp-initiated-logout-bad-post-logout-redirect-uri", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			for _, u := range []string{"https://app.example/bye?x=1", "https://evil.example/bye", "https://app.example/bye/"} {
				p := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {tr.str("id_token")}, "post_logout_redirect_uri": {u}}.Encode())
				if p.Location != nil || p.Status != 400 {
					t.Fatalf("%s: logout = %d %v", u, p.Status, p.Location)
				}
			}
		}},
		{"oidcc-rp-initiated-logout-modified-id-token-hint", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			hint := tr.str("id_token")
			hint = hint[:len(hint)-4] + "AAAA"
			p := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://app.example/bye"}}.Encode())
			if p.Location != nil || p.Status != 400 {
				t.Fatalf("logout = %d %v", p.Status, p.Location)
			}
		}},
		{"oidcc-rp-initiated-logout-no-params", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			e.flow(b, "web", secret, nil)
			p := b.Get(e.issuer + "/oauth2/logout")
			if p.Status != 200 || !strings.Contains(p.Body, `value="logout"`) {
				t.Fatalf("logout without params = %d:\n%s", p.Status, p.Body)
			}
			p = b.Submit(p, url.Values{"decision": {"logout"}})
			if p.Status != 200 || !strings.Contains(p.Body, "You are signed out") {
				t.Fatalf("confirm = %d:\n%s", p.Status, p.Body)
			}
			_, ch := signettest.PKCE()
			errorRedirect(t, e, b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})), "login_required")
		}},
		{"oidcc-rp-initiated-logout-no-post-logout-redirect-uri", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			p := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {tr.str("id_token")}}.Encode())
			if p.Location != nil || !strings.Contains(p.Body, "You are signed out") {
				t.Fatalf("logout = %d %v", p.Status, p.Location)
			}
		}},
		{"oidcc-rp-initiated-logout-no-state", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			p := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {tr.str("id_token")}, "post_logout_redirect_uri": {"https://app.example/bye"}}.Encode())
			if p.Location == nil || p.Location.String() != "https://app.example/bye" {
				t.Fatalf("logout = %d %v", p.Status, p.Location)
			}
		}},
		{"oidcc-rp-initiated-logout-only-state", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			e.flow(b, "web", secret, nil)
			p := b.Get(e.issuer + "/oauth2/logout?state=x")
			if p.Location != nil || !strings.Contains(p.Body, `value="logout"`) {
				t.Fatalf("logout with only state = %d %v", p.Status, p.Location)
			}
		}},
	}
	for _, row := range rows {
		t.Run(row.module, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			secret := e.webClient("web", nil)
			row.run(t, e, secret)
		})
	}
}
