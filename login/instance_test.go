package login_test

import (
	"context"
	"github.com/signet-auth/signet/internal/signettest"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDeletedClientStaysDead: a code, an access token and a refresh token
// of the code flow, all issued to a client that was then deleted and
// recreated with the same id, are refused: the recreated client is another
// instance (issue 9 item 4, for the records the code flow adds).
func TestDeletedClientStaysDead(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	secret := e.webClient("web", nil)
	b := e.browser()
	tr, _ := e.flow(b, "web", secret, url.Values{"scope": {"openid profile offline_access"}})
	at, rt := tr.str("access_token"), tr.str("refresh_token")
	if rt == "" {
		t.Fatalf("no refresh token: %s", tr.raw)
	}
	if status, _, _ := e.userinfo(at); status != http.StatusOK {
		t.Fatalf("userinfo before delete = %d", status)
	}

	// A code issued before the delete, redeemed after it.
	verifier, challenge := signettest.PKCE()
	p := b.Authorize(url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid"}, "state": {"s"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}})
	code := codeFrom(t, p).Get("code")

	if err := e.srv.Clients().Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	secret = e.webClient("web", nil)

	if got := e.redeem("web", secret, code, "https://app.example/cb", verifier); got.status != http.StatusBadRequest || got.str("error") != "invalid_grant" {
		t.Errorf("old code at the new client = %d %s, want 400 invalid_grant", got.status, got.raw)
	}
	if status, _, _ := e.userinfo(at); status != http.StatusUnauthorized {
		t.Errorf("old access token at userinfo = %d, want 401", status)
	}
	if got := e.token("web", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); got.status != http.StatusBadRequest || got.str("error") != "invalid_grant" {
		t.Errorf("old refresh token at the new client = %d %s, want 400 invalid_grant", got.status, got.raw)
	}
	// The new client itself works.
	if _, cb := e.flow(e.browser(), "web", secret, nil); cb.Get("code") == "" {
		t.Error("new client cannot log in")
	}
}

// TestUserinfo_RevokedAndCutOff: userinfo goes through the shared bearer
// check, so a revoked access token and one issued before its user's
// logout are refused at once (issue 9 item 1, for the endpoint the code
// flow adds).
func TestUserinfo_RevokedAndCutOff(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.webClient("web", nil)
	at1 := func() string {
		tr, _ := e.flow(e.browser(), "web", secret, nil)
		return tr.str("access_token")
	}
	revoked, cut := at1(), at1()
	if status, _, _ := e.userinfo(revoked); status != http.StatusOK {
		t.Fatalf("userinfo = %d before revocation", status)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {revoked}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d", resp.StatusCode)
	}
	if status, _, _ := e.userinfo(revoked); status != http.StatusUnauthorized {
		t.Errorf("revoked token at userinfo = %d, want 401", status)
	}
	if _, err := e.srv.Logout(context.Background(), e.alice.ID); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.userinfo(cut); status != http.StatusUnauthorized {
		t.Errorf("token issued before the logout at userinfo = %d, want 401", status)
	}
	// A login right after the logout, at the same instant, works.
	if status, _, _ := e.userinfo(at1()); status != http.StatusOK {
		t.Errorf("token issued after the logout at userinfo = %d, want 200", status)
	}
}
