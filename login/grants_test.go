package login_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/users"
)

// Issue 16, on the browser surface: a consent, a code and the scope of a
// code are re-checked against the client instance, the consent and the
// user as they are when used.

const keepsAccessText = "Keep this access while you are away, until you withdraw it"

// thirdParty registers a confidential third-party client (consent page).
func (e *env) thirdParty(id string, mod func(*clients.Client)) string {
	return e.webClient(id, func(c *clients.Client) {
		c.FirstParty = false
		if mod != nil {
			mod(c)
		}
	})
}

// consentPage logs alice in (when b has no session) for client id and
// returns the consent page, failing unless that is what was shown.
func consentPage(t *testing.T, b *browser, id, scope, challenge string) page {
	t.Helper()
	p := b.Authorize(authzQuery(challenge, url.Values{"client_id": {id}, "scope": {scope}}))
	if p.Location == nil && strings.Contains(p.Body, `name="password"`) {
		p = b.login(p, "alice", alicePassword)
	}
	if !strings.Contains(p.Body, `value="allow"`) {
		t.Fatalf("no consent page (status %d, location %v):\n%s", p.Status, p.Location, p.Body)
	}
	return p
}

// TestGrants_ConsentBelongsToClientInstance is issue 16 item 2: a client
// deleted and registered again under the same id (another owner, another
// redirect URI) gets the consent page again, not the user's code; the old
// consent is not listed; and a consent page shown for the old instance
// cannot be answered for the new one.
func TestGrants_ConsentBelongsToClientInstance(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.thirdParty("third", nil)
	b := e.browser()
	_, ch := signettest.PKCE()
	codeFrom(t, b.Submit(consentPage(t, b, "third", "openid", ch), url.Values{"decision": {"allow"}}))
	// Remembered for this instance: no page the second time.
	codeFrom(t, b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}})))

	if err := e.srv.Clients().Delete(ctx, "third"); err != nil {
		t.Fatal(err)
	}
	if list, err := authority.Consents(ctx, e.store, e.alice.ID); err != nil || len(list) != 0 {
		t.Errorf("consents after the client was deleted = %v %v, want none", list, err)
	}
	evil := func(c *clients.Client) {
		c.RedirectURIs = []string{"https://evil.example/cb"}
		c.FirstParty = false
	}
	e.webClient("third", evil)
	p := b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}, "redirect_uri": {"https://evil.example/cb"}}))
	if p.Location != nil || !strings.Contains(p.Body, `value="allow"`) {
		t.Fatalf("recreated client got past consent: status %d location %v", p.Status, p.Location)
	}
	// prompt=none cannot take the old consent either.
	p = b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}, "redirect_uri": {"https://evil.example/cb"}, "prompt": {"none"}}))
	if p.Location == nil || p.Location.Query().Get("error") != "consent_required" {
		t.Fatalf("prompt=none at the recreated client = %d %v", p.Status, p.Location)
	}

	// A consent page shown for one instance, answered after the id was
	// registered again: refused, no code.
	stale := b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}, "redirect_uri": {"https://evil.example/cb"}}))
	if !strings.Contains(stale.Body, `value="allow"`) {
		t.Fatalf("no consent page: %d\n%s", stale.Status, stale.Body)
	}
	if err := e.srv.Clients().Delete(ctx, "third"); err != nil {
		t.Fatal(err)
	}
	e.webClient("third", evil)
	got := b.Submit(stale, url.Values{"decision": {"allow"}})
	if got.Location != nil || !strings.Contains(got.Body, "This page has expired") {
		t.Fatalf("consent answered for another instance = %d %v:\n%s", got.Status, got.Location, got.Body)
	}
	if list, _ := authority.Consents(ctx, e.store, e.alice.ID); len(list) != 0 {
		t.Errorf("a consent was recorded for the instance the user never saw: %v", list)
	}
}

// TestGrants_WithdrawalEndsCodes is issue 16 item 4: a code issued just
// before the consent is withdrawn does not redeem after it, for a
// third-party client (with a consent) and a first-party one (without).
func TestGrants_WithdrawalEndsCodes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	for _, row := range []struct {
		id    string
		third bool
	}{{"third", true}, {"first", false}} {
		t.Run(row.id, func(t *testing.T) {
			secret := e.webClient(row.id, func(c *clients.Client) { c.FirstParty = !row.third })
			b := e.browser()
			v, ch := signettest.PKCE()
			var p page
			if row.third {
				p = b.Submit(consentPage(t, b, row.id, "openid", ch), url.Values{"decision": {"allow"}})
			} else {
				p = b.login(b.Authorize(authzQuery(ch, url.Values{"client_id": {row.id}})), "alice", alicePassword)
			}
			code := codeFrom(t, p).Get("code")
			if _, _, err := authority.WithdrawConsent(ctx, e.store, e.alice.ID, row.id, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if tr := e.redeem(row.id, secret, code, "https://app.example/cb", v); tr.status != http.StatusBadRequest || tr.str("error") != "invalid_grant" {
				t.Fatalf("code issued before the withdrawal, redeemed after = %d %s, want invalid_grant", tr.status, tr.raw)
			}
			// A code issued after it works (first party; the third party asks again).
			if !row.third {
				v, ch = signettest.PKCE()
				code = codeFrom(t, b.Authorize(authzQuery(ch, url.Values{"client_id": {row.id}}))).Get("code")
				if tr := e.redeem(row.id, secret, code, "https://app.example/cb", v); tr.status != http.StatusOK {
					t.Fatalf("a code issued after the withdrawal = %d %s", tr.status, tr.raw)
				}
			}
		})
	}
}

// TestGrants_ThirdPartyRefreshNeedsConsent is issue 16 item 10: a
// third-party client gets a refresh token only when the consent page told
// the user it keeps access while they are away and the user allowed it,
// whether it asked for offline_access or only holds the refresh_token
// grant (as MCP clients do).
func TestGrants_ThirdPartyRefreshNeedsConsent(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()

	t.Run("refresh grant without offline_access: the page says so", func(t *testing.T) {
		secret := e.thirdParty("mcp", nil)
		b := e.browser()
		v, ch := signettest.PKCE()
		p := consentPage(t, b, "mcp", "openid", ch)
		if !strings.Contains(p.Body, keepsAccessText) || !strings.Contains(p.Body, "keeps this access while you are away") {
			t.Fatalf("the consent page does not tell the user the app keeps access:\n%s", p.Body)
		}
		tr := e.redeem("mcp", secret, codeFrom(t, b.Submit(p, url.Values{"decision": {"allow"}})).Get("code"), "https://app.example/cb", v)
		if tr.status != http.StatusOK || tr.str("refresh_token") == "" {
			t.Fatalf("redeem after the user allowed keeping access = %d %s", tr.status, tr.raw)
		}
	})
	t.Run("offline_access listed once", func(t *testing.T) {
		b := e.browser()
		_, ch := signettest.PKCE()
		p := consentPage(t, b, "mcp", "openid offline_access", ch)
		if n := strings.Count(p.Body, keepsAccessText); n != 1 {
			t.Fatalf("keeping access listed %d times:\n%s", n, p.Body)
		}
	})
	t.Run("no refresh grant: neither the text nor a refresh token", func(t *testing.T) {
		secret := e.thirdParty("norefresh", func(c *clients.Client) { c.GrantTypes = []string{clients.GrantAuthorizationCode} })
		b := e.browser()
		v, ch := signettest.PKCE()
		p := consentPage(t, b, "norefresh", "openid offline_access", ch)
		if strings.Contains(p.Body, keepsAccessText) || strings.Contains(p.Body, "(offline_access)") {
			t.Fatalf("the page promises access the client cannot have:\n%s", p.Body)
		}
		tr := e.redeem("norefresh", secret, codeFrom(t, b.Submit(p, url.Values{"decision": {"allow"}})).Get("code"), "https://app.example/cb", v)
		if tr.status != http.StatusOK || tr.str("refresh_token") != "" {
			t.Fatalf("redeem = %d %s, want no refresh token", tr.status, tr.raw)
		}
	})
	t.Run("refresh grant added after the consent: asked again", func(t *testing.T) {
		secret := e.thirdParty("grows", func(c *clients.Client) { c.GrantTypes = []string{clients.GrantAuthorizationCode} })
		b := e.browser()
		_, ch := signettest.PKCE()
		codeFrom(t, b.Submit(consentPage(t, b, "grows", "openid", ch), url.Values{"decision": {"allow"}}))
		both := []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}
		if _, err := e.srv.Clients().Update(ctx, "grows", clients.Patch{GrantTypes: &both}); err != nil {
			t.Fatal(err)
		}
		v, ch := signettest.PKCE()
		p := b.Authorize(authzQuery(ch, url.Values{"client_id": {"grows"}}))
		if p.Location != nil {
			tr := e.redeem("grows", secret, p.Location.Query().Get("code"), "https://app.example/cb", v)
			t.Fatalf("no consent page after the client gained refresh tokens; redeem = %d refresh %t", tr.status, tr.str("refresh_token") != "")
		}
		if !strings.Contains(p.Body, keepsAccessText) {
			t.Fatalf("consent page without the keep-access line:\n%s", p.Body)
		}
	})
	t.Run("refresh grant added while the consent page is open: the answer is refused", func(t *testing.T) {
		secret := e.thirdParty("sneaky", func(c *clients.Client) { c.GrantTypes = []string{clients.GrantAuthorizationCode} })
		b := e.browser()
		v, ch := signettest.PKCE()
		p := consentPage(t, b, "sneaky", "openid", ch)
		both := []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}
		if _, err := e.srv.Clients().Update(ctx, "sneaky", clients.Patch{GrantTypes: &both}); err != nil {
			t.Fatal(err)
		}
		got := b.Submit(p, url.Values{"decision": {"allow"}})
		if got.Location != nil {
			tr := e.redeem("sneaky", secret, got.Location.Query().Get("code"), "https://app.example/cb", v)
			t.Fatalf("allowed what the page never showed; redeem = %d refresh %t", tr.status, tr.str("refresh_token") != "")
		}
		if !strings.Contains(got.Body, "This page has expired") {
			t.Fatalf("answer = %d:\n%s", got.Status, got.Body)
		}
	})
	t.Run("default scopes changed while the consent page is open: the answer is refused", func(t *testing.T) {
		e.thirdParty("widens", nil)
		b := e.browser()
		_, ch := signettest.PKCE()
		q := authzQuery(ch, url.Values{"client_id": {"widens"}, "scope": nil}) // the client's default scopes
		p := b.Authorize(q)
		if p.Location == nil && strings.Contains(p.Body, `name="password"`) {
			p = b.login(p, "alice", alicePassword)
		}
		def := []string{"openid", "email"}
		if _, err := e.srv.Clients().Update(ctx, "widens", clients.Patch{DefaultScopes: &def}); err != nil {
			t.Fatal(err)
		}
		if got := b.Submit(p, url.Values{"decision": {"allow"}}); got.Location != nil || !strings.Contains(got.Body, "This page has expired") {
			t.Fatalf("answer after the default scopes grew = %d %v", got.Status, got.Location)
		}
	})
	t.Run("first party turned third party: its refresh needs a consent", func(t *testing.T) {
		secret := e.webClient("turns", nil)
		tr, _ := e.flow(e.browser(), "turns", secret, nil)
		if tr.str("refresh_token") == "" {
			t.Fatalf("first party got no refresh token: %s", tr.raw)
		}
		no := false
		if _, err := e.srv.Clients().Update(ctx, "turns", clients.Patch{FirstParty: &no}); err != nil {
			t.Fatal(err)
		}
		if r := e.token("turns", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}); r.status != http.StatusBadRequest {
			t.Fatalf("refresh without a consent to keeping access = %d %s", r.status, r.raw)
		}
	})
}

// TestGrants_CodeGrantPrivilegedScope is the code-flow row of issue 16
// item 1's class test: a privileged scope (signet:* other than
// signet:admin, which the browser refuses outright) reaches a user's
// token only when the user holds the role, and a refresh drops it once
// the role is taken away.
func TestGrants_CodeGrantPrivilegedScope(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	secret := e.webClient("ops", func(c *clients.Client) { c.Scopes = append(c.Scopes, "signet:audit") })
	scopeOf := func(tr tokenResponse) string { return tr.str("scope") }
	tr, _ := e.flow(e.browser(), "ops", secret, url.Values{"scope": {"openid signet:audit"}})
	if scopeOf(tr) != "openid" || signettest.Claims(t, tr.str("access_token"))["scope"] != "openid" {
		t.Fatalf("user without the role got scope %q", scopeOf(tr))
	}
	roles := []string{"signet:audit"}
	if _, _, err := e.srv.Users().Update(ctx, e.alice.ID, users.Patch{Roles: &roles}); err != nil {
		t.Fatal(err)
	}
	tr, _ = e.flow(e.browser(), "ops", secret, url.Values{"scope": {"openid signet:audit"}})
	if scopeOf(tr) != "openid signet:audit" {
		t.Fatalf("user with the role got scope %q", scopeOf(tr))
	}
	roles = nil
	if _, _, err := e.srv.Users().Update(ctx, e.alice.ID, users.Patch{Roles: &roles}); err != nil {
		t.Fatal(err)
	}
	r := e.token("ops", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}})
	if r.status != http.StatusOK || scopeOf(r) != "openid" {
		t.Fatalf("refresh after the role was taken = %d %s", r.status, r.raw)
	}
}

// TestGrants_EveryClientKeyedRecordChecksInstance is the class test of
// issue 16 item 2: every record Signet keeps under a client id (code,
// access token, refresh family, consent, and the login and consent pages
// in progress) was made for one instance of the client, and none of them
// serves the instance registered under the same id after a delete.
func TestGrants_EveryClientKeyedRecordChecksInstance(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	secret := e.thirdParty("app", nil)
	b := e.browser()
	v, ch := signettest.PKCE()
	cb := codeFrom(t, b.Submit(consentPage(t, b, "app", "openid", ch), url.Values{"decision": {"allow"}}))
	tr := e.redeem("app", secret, cb.Get("code"), "https://app.example/cb", v)
	if tr.status != http.StatusOK || tr.str("refresh_token") == "" {
		t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	v2, ch2 := signettest.PKCE()
	code := codeFrom(t, b.Authorize(authzQuery(ch2, url.Values{"client_id": {"app"}}))).Get("code") // consent remembered
	loginB := e.browser()
	loginPage := loginB.Authorize(authzQuery(ch, url.Values{"client_id": {"app"}}))
	consentB := e.browser()
	consentWait := consentPage(t, consentB, "app", "openid email", ch)

	if err := e.srv.Clients().Delete(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	secret = e.thirdParty("app", nil)

	rows := []struct {
		record string
		check  func(t *testing.T)
	}{
		{"authorization code", func(t *testing.T) {
			if r := e.redeem("app", secret, code, "https://app.example/cb", v2); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
				t.Errorf("redeem = %d %s, want invalid_grant", r.status, r.raw)
			}
		}},
		{"access token", func(t *testing.T) {
			if st, _, _ := e.userinfo(tr.str("access_token")); st != http.StatusUnauthorized {
				t.Errorf("userinfo = %d, want 401", st)
			}
		}},
		{"refresh family", func(t *testing.T) {
			if r := e.token("app", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}); r.status != http.StatusBadRequest {
				t.Errorf("refresh = %d %s, want 400", r.status, r.raw)
			}
		}},
		{"consent", func(t *testing.T) {
			if p := b.Authorize(authzQuery(ch, url.Values{"client_id": {"app"}})); p.Location != nil || !strings.Contains(p.Body, `value="allow"`) {
				t.Errorf("authorize = %d %v, want the consent page", p.Status, p.Location)
			}
			if list, err := authority.Consents(ctx, e.store, e.alice.ID); err != nil || len(list) != 0 {
				t.Errorf("listed consents = %v %v, want none", list, err)
			}
		}},
		{"consent page in progress", func(t *testing.T) {
			if p := consentB.Submit(consentWait, url.Values{"decision": {"allow"}}); p.Location != nil || !strings.Contains(p.Body, "This page has expired") {
				t.Errorf("answer = %d %v, want the expired page", p.Status, p.Location)
			}
		}},
		{"login page in progress", func(t *testing.T) {
			if p := loginB.login(loginPage, "alice", alicePassword); p.Location != nil || !strings.Contains(p.Body, "This page has expired") {
				t.Errorf("login = %d %v, want the expired page", p.Status, p.Location)
			}
		}},
	}
	for _, row := range rows {
		t.Run(row.record, row.check)
	}
}

// TestGrants_CodeRechecksClient: a code is redeemed against the client as
// it is now: one sent to a redirect URI the operator has since removed is
// refused, and a scope the client lost since is not granted.
func TestGrants_CodeRechecksClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	secret := e.webClient("web", func(c *clients.Client) { c.RedirectURIs = append(c.RedirectURIs, "https://old.example/cb") })
	b := e.browser()
	v, ch := signettest.PKCE()
	p := b.login(b.Authorize(authzQuery(ch, url.Values{"redirect_uri": {"https://old.example/cb"}})), "alice", alicePassword)
	code := codeFrom(t, p).Get("code")
	only := []string{"https://app.example/cb"}
	if _, err := e.srv.Clients().Update(ctx, "web", clients.Patch{RedirectURIs: &only}); err != nil {
		t.Fatal(err)
	}
	if tr := e.redeem("web", secret, code, "https://old.example/cb", v); tr.status != http.StatusBadRequest || tr.str("error") != "invalid_grant" {
		t.Errorf("code sent to a removed redirect URI = %d %s, want invalid_grant", tr.status, tr.raw)
	}

	v, ch = signettest.PKCE()
	code = codeFrom(t, b.Authorize(authzQuery(ch, url.Values{"scope": {"openid email"}}))).Get("code")
	scopes := []string{"openid", "profile"}
	if _, err := e.srv.Clients().Update(ctx, "web", clients.Patch{Scopes: &scopes, DefaultScopes: &[]string{"openid"}}); err != nil {
		t.Fatal(err)
	}
	tr := e.redeem("web", secret, code, "https://app.example/cb", v)
	if tr.status != http.StatusOK || tr.str("scope") != "openid" || signettest.Claims(t, tr.str("access_token"))["email"] != nil {
		t.Errorf("code redeemed after the client lost email = %d %s, want scope openid only", tr.status, tr.raw)
	}
}
