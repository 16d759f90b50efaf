package login_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
)

// TestCodeFlow: authorize → login page → code → tokens; the ID token
// verifies with go-oidc and carries what OIDC Core §2 requires; userinfo
// answers for the same sub; refresh gives a new ID token.
func TestCodeFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.webClient("web", nil)
	b := e.browser()
	verifier, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid profile email offline_access"}, "state": {"xyz"}, "nonce": {"abc"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	p := b.authorize(q)
	if p.status != http.StatusOK || !strings.Contains(p.body, `autocomplete="username"`) {
		t.Fatalf("authorize = %d:\n%s", p.status, p.body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	p = b.login(p, "alice", alicePassword)
	cb := codeFrom(t, p)
	if cb.Get("state") != "xyz" || cb.Get("iss") != e.issuer {
		t.Fatalf("callback = %v", cb)
	}
	if got := p.location.Scheme + "://" + p.location.Host + p.location.Path; got != "https://app.example/cb" {
		t.Fatalf("redirect to %s", got)
	}
	tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", verifier)
	if tr.status != http.StatusOK {
		t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	idt := tr.str("id_token")
	if h := header(t, idt); h["typ"] != "JWT" || h["alg"] != "RS256" {
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
	c := claims(t, idt)
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid"} {
		if _, ok := c[k]; !ok {
			t.Errorf("ID token lacks %s: %v", k, c)
		}
	}
	if c["email"] != "alice@example.com" || c["name"] != "Alice Liddell" {
		t.Errorf("ID token profile/email claims = %v", c)
	}
	if h := header(t, tr.str("access_token")); h["typ"] != "at+jwt" {
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
	c2 := claims(t, rr.str("id_token"))
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
