package login_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
)

// TestCodeFlow: authorize → login page → code → tokens; the ID token
// verifies with go-oidc and carries what OIDC Core §2 requires; userinfo
// answers for the same sub; refresh gives a new ID token.
func TestCodeFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.webClient("web", nil)
	b := e.browser()
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid profile email offline_access"}, "state": {"xyz"}, "nonce": {"abc"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	p := b.Authorize(q)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `autocomplete="username"`) {
		t.Fatalf("authorize = %d:\n%s", p.Status, p.Body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := p.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	p = b.login(p, "alice", alicePassword)
	cb := codeFrom(t, p)
	if cb.Get("state") != "xyz" || cb.Get("iss") != e.issuer {
		t.Fatalf("callback = %v", cb)
	}
	if got := p.Location.Scheme + "://" + p.Location.Host + p.Location.Path; got != "https://app.example/cb" {
		t.Fatalf("redirect to %s", got)
	}
	tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", verifier)
	if tr.status != http.StatusOK {
		t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	idt := tr.str("id_token")
	if h := signettest.Header(t, idt); h["typ"] != "JWT" || h["alg"] != "RS256" {
		t.Errorf("ID token header = %v", h)
	}
	ctx := oidc.ClientContext(context.Background(), http.DefaultClient)
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := provider.Verifier(&oidc.Config{ClientID: "web", Now: e.clock.Now}).Verify(ctx, idt)
	if err != nil {
		t.Fatalf("go-oidc Verify: %v", err)
	}
	if tok.Nonce != "abc" || tok.Subject != e.alice.ID {
		t.Errorf("nonce, sub = %q, %q", tok.Nonce, tok.Subject)
	}
	if err := tok.VerifyAccessToken(tr.str("access_token")); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	c := signettest.Claims(t, idt)
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid"} {
		if _, ok := c[k]; !ok {
			t.Errorf("ID token lacks %s: %v", k, c)
		}
	}
	if c["email"] != "alice@example.com" || c["name"] != "Alice Liddell" {
		t.Errorf("ID token profile/email claims = %v", c)
	}
	if h := signettest.Header(t, tr.str("access_token")); h["typ"] != "at+jwt" {
		t.Errorf("access token typ = %v", h["typ"])
	}
	status, ui, _ := e.userinfo(tr.str("access_token"))
	if status != 200 || ui["sub"] != e.alice.ID || ui["email"] != "alice@example.com" || ui["email_verified"] != true || ui["name"] != "Alice Liddell" {
		t.Fatalf("userinfo = %d %v", status, ui)
	}
	// Refresh: a new ID token with the same iss, sub, aud, azp, auth_time and a newer iat.
	if tr.str("refresh_token") == "" {
		t.Fatal("no refresh token")
	}
	e.clock.Add(90e9)
	rr := e.token("web", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}})
	if rr.status != 200 || rr.str("id_token") == "" {
		t.Fatalf("refresh = %d %s", rr.status, rr.raw)
	}
	c2 := signettest.Claims(t, rr.str("id_token"))
	for _, k := range []string{"iss", "sub", "aud", "azp", "auth_time", "sid"} {
		if c2[k] != c[k] {
			t.Errorf("refreshed %s = %v, want %v", k, c2[k], c[k])
		}
	}
	if c2["iat"].(float64) <= c["iat"].(float64) {
		t.Errorf("refreshed iat %v not after %v", c2["iat"], c["iat"])
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: "web", Now: e.clock.Now}).Verify(ctx, rr.str("id_token")); err != nil {
		t.Errorf("refreshed ID token: %v", err)
	}
}

// TestPublicClientSPA: a public client redeems its code with no secret
// from its own origin (CORS), gets the refresh token in the HttpOnly
// cookie, and refreshes with the cookie from its origin; another origin
// gets no CORS grant, and no refresh either (issue 16, item 11).
func TestPublicClientSPA(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.webClient("spa", func(c *clients.Client) {
		c.Public, c.AuthMethods, c.RefreshTokenCookie = true, nil, true
	})
	b := e.browser()
	v, ch := signettest.PKCE()
	cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, url.Values{"client_id": {"spa"}, "scope": {"openid offline_access"}})), "alice", alicePassword))
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"spa"}, "code": {cb.Get("code")},
		"redirect_uri": {"https://app.example/cb"}, "code_verifier": {v}}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("SPA redemption = %d %v", resp.StatusCode, resp.Header)
	}
	var rt *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "signet_refresh_token" {
			rt = c
		}
	}
	if rt == nil || !rt.HttpOnly || !rt.Secure {
		t.Fatalf("refresh cookie = %+v", rt)
	}
	req, _ = http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader("grant_type=refresh_token&client_id=spa"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(&http.Cookie{Name: rt.Name, Value: rt.Value})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("refresh from another origin = %d, CORS %q (want 400, and nothing that origin may read)", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	req, _ = http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader("grant_type=refresh_token&client_id=spa"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://app.example")
	req.AddCookie(&http.Cookie{Name: rt.Name, Value: rt.Value})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("refresh from the SPA's origin = %d, CORS %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestUserinfoRefusals: userinfo answers 401 with WWW-Authenticate for a
// missing, malformed, forged or client-only token, and 403 without openid.
func TestUserinfoRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.webClient("web", func(c *clients.Client) {
		c.GrantTypes = append(c.GrantTypes, clients.GrantClientCredentials)
	})
	cc := e.token("web", secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}})
	tr, _ := e.flow(e.browser(), "web", secret, nil)
	idt := tr.str("id_token")
	for name, tok := range map[string]string{"malformed": "abc", "an ID token": idt, "client_credentials": cc.str("access_token"),
		"tampered": tr.str("access_token")[:len(tr.str("access_token"))-3] + "AAA"} {
		st, _, h := e.userinfo(tok)
		if st != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %q", name, st, h.Get("WWW-Authenticate"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/oauth2/userinfo", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	tr2, _ := e.flow(e.browser(), "web", secret, url.Values{"scope": {"read"}})
	if st, _, _ := e.userinfo(tr2.str("access_token")); st != http.StatusForbidden {
		t.Errorf("without openid: %d", st)
	}
	if tr2.str("id_token") != "" {
		t.Error("an ID token without scope openid")
	}
}

// TestNativeClient: a native public client with a private-use scheme and a
// loopback redirect gets its code back on either; the continue page after
// the login form keeps the private-use scheme.
func TestNativeClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.webClient("app", func(c *clients.Client) {
		c.ApplicationType, c.Public, c.AuthMethods = clients.AppNative, true, nil
		c.RedirectURIs = []string{"com.example.app:/oauth2redirect", "http://127.0.0.1/cb"}
	})
	for _, redirect := range []string{"com.example.app:/oauth2redirect", "http://127.0.0.1:43127/cb"} {
		b := e.browser()
		v, ch := signettest.PKCE()
		p := b.login(b.Authorize(authzQuery(ch, url.Values{"client_id": {"app"}, "redirect_uri": {redirect}})), "alice", alicePassword)
		cb := codeFrom(t, p)
		if !strings.HasPrefix(p.Location.String(), redirect+"?") {
			t.Fatalf("sent to %s, want %s", p.Location, redirect)
		}
		if tr := e.redeem("app", "", cb.Get("code"), redirect, v); tr.status != http.StatusOK {
			t.Fatalf("%s: redeem = %d %s", redirect, tr.status, tr.raw)
		}
	}
}

// TestMaxAgeZero: max_age=0 asks for the password even right after a login.
func TestMaxAgeZero(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.webClient("web", nil)
	b := e.browser()
	e.flow(b, "web", secret, nil)
	_, ch := signettest.PKCE()
	if p := b.Authorize(authzQuery(ch, url.Values{"max_age": {"0"}})); !strings.Contains(p.Body, `id="password"`) {
		t.Fatalf("max_age=0 = %d %v", p.Status, p.Location)
	}
}

// TestLogout_FromTheRelyingPartyServer: oauth2-proxy's backend logout calls
// the end-session endpoint from its server with the ID token and no browser
// cookie. That ends the session the token came from (its sid), so the
// browser is asked to log in again; the page says so only when it did,
// and another session of the same user lives on. (It answered "You have
// been signed out" while the browser's session lived on: issue 21.)
func TestLogout_FromTheRelyingPartyServer(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.webClient("web", nil)
	b, other := e.browser(), e.browser()
	tr, _ := e.flow(b, "web", secret, nil)
	e.flow(other, "web", secret, nil) // the same user in a second browser
	idt := tr.str("id_token")
	if signettest.Claims(t, idt)["sid"] == nil {
		t.Fatal("the ID token has no sid")
	}
	server := e.browser() // no cookie: the relying party's server
	logout := e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {idt}}.Encode()
	p := server.Get(logout)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "The session is ended") {
		t.Fatalf("server-side logout = %d %s", p.Status, p.Body)
	}
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid"}, "state": {"s"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	_ = verifier
	if ap := b.Authorize(q); ap.Location != nil {
		t.Fatalf("after the server-side logout the browser still had its session: sent to %s", ap.Location)
	}
	if ap := other.Authorize(q); ap.Location == nil {
		t.Fatalf("the user's other session was ended too: %d", ap.Status)
	}
	// Again: nothing left to end, and the page says so.
	if p := server.Get(logout); p.Status != http.StatusOK || !strings.Contains(p.Body, "No session was ended") || strings.Contains(p.Body, "signed out of") {
		t.Fatalf("second server-side logout = %d %s", p.Status, p.Body)
	}
}
