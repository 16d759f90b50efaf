//go:build browser

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/users"
)

// TestBrowserUpstream drives headless Chromium through sign-in at one
// signet serve (down) through another (up) and the logout through both,
// with the go-oidc relying party at down: the user clicks "Sign in with
// Corp SSO" on down's login page, signs in on up's page and reaches the
// relying party; the relying party's logout goes through up's
// end_session_endpoint and back to the relying party; the next sign-in
// asks up for the password again (up's session ended). A logout confirmed
// on down's page ends on down's signed-out page naming both. Screenshots:
// login-upstream.png (the button) and signed-out-upstream.png.
func TestBrowserUpstream(t *testing.T) {
	pair := startUpstreamPair(t, "localhost", "127.0.0.1", nil, nil)
	down, upIssuer, downIssuer, downLogs := pair.down, pair.upIssuer, pair.downIssuer, pair.downLogs
	ctx := t.Context()
	rp := newRelyingParty(t, downIssuer, nil)
	_, appSecret, err := down.Server.Clients().Create(ctx, clients.Client{ID: "notes", ClientName: "Notes", FirstParty: true,
		GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid", "profile", "email"}, Audiences: []string{"api"},
		RedirectURIs: []string{rp.srv.URL + "/cb"}, PostLogoutRedirectURIs: []string{rp.srv.URL + "/bye"}})
	if err != nil {
		t.Fatal(err)
	}
	rp.register("notes", appSecret)

	b := newChromium(t, 480, 760, pair.logs)
	onUp := func(what string) {
		t.Helper()
		if loc := b.location(); !strings.HasPrefix(loc, upIssuer+"/") {
			t.Fatalf("%s: at %s, want up's page", what, loc)
		}
	}
	// signIn starts at the relying party, clicks the button and signs in
	// at up, which must ask for the password.
	signIn := func(name string) {
		t.Helper()
		b.step(name+": down's login page", chromedp.Navigate(rp.srv.URL+"/login?client=notes"),
			chromedp.WaitVisible(chromedp.CSS(`form[action$="/login/upstream/corp"] button`)))
		if name == "first sign-in" {
			b.shot("login-upstream.png")
		}
		// Down's own page has a password form too: wait for it to go
		// (its upstream button with it), then for up's #password.
		b.step(name+": the button", chromedp.Click(chromedp.CSS(`form[action$="/login/upstream/corp"] button`)),
			chromedp.WaitNotPresent(chromedp.CSS(`form[action$="/login/upstream/corp"]`)),
			chromedp.WaitVisible(chromedp.CSS("#password")))
		onUp(name + ": the password is asked")
		b.step(name+": up's login", append(passwordSignIn("carol", "carol's long password"), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)
		if got := b.text("#rp-ok"); !strings.Contains(got, "client=notes") || !strings.Contains(got, "email=carol@corp.example") {
			t.Fatalf("%s: relying party says %q", name, got)
		}
	}

	signIn("first sign-in")
	if got := b.text("#rp-ok"); !strings.Contains(got, "sub=") {
		t.Fatalf("relying party: %q", got)
	}
	// The relying party's logout: through up and back to it.
	b.step("rp logout", chromedp.Navigate(rp.srv.URL+"/logout?client=notes"), chromedp.WaitVisible(chromedp.CSS("#bye")))
	if got := b.text("#bye"); got != "signed out state=bye-state" {
		t.Fatalf("after the relying party's logout: %q", got)
	}
	if !strings.Contains(downLogs.String(), `"msg":"upstream logout"`) {
		t.Fatalf("down did not send the browser through up's logout:\n%s", downLogs)
	}
	// up's session ended: the next sign-in asks for the password.
	signIn("second sign-in")

	// Signed out on down's own page: the page says both ended.
	b.step("logout page", chromedp.Navigate(downIssuer+"/oauth2/logout"), chromedp.WaitVisible(chromedp.CSS(`button[value=logout]`)))
	b.step("sign out", chromedp.Click(chromedp.CSS(`button[value=logout]`)), chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
	if loc := b.location(); !strings.HasPrefix(loc, downIssuer+"/login/upstream/corp/logout/callback?") {
		t.Fatalf("signed-out page at %s, want down's logout callback", loc)
	}
	if got := b.text(`p[role=status]`); !strings.Contains(got, "signed out of Signet and of Corp SSO") {
		t.Fatalf("signed-out page: %q", got)
	}
	b.shot("signed-out-upstream.png")
	signIn("third sign-in")
}

// upstreamPair is two signet serve in process: up, an OpenID Connect
// provider with the user carol and Signet registered as its client
// "signet" (both callbacks, as docs/login.md says to register them), and
// down, whose sign-in pages offer "Sign in with Corp SSO" through up.
type upstreamPair struct {
	up, down             *Main
	upIssuer, downIssuer string
	downLogs             *signettest.LogBuffer
	logs                 func() string // both servers' logs, for a failure's message
}

// startUpstreamPair starts the pair on upHost and downHost, which must
// differ (a browser's cookies are per host, not per port); now is down's
// clock (nil: the default) and editDown changes down's configuration.
func startUpstreamPair(t *testing.T, upHost, downHost string, now func() time.Time, editDown func(*config.Config)) upstreamPair {
	t.Helper()
	upPort, downPort := freePort(t), freePort(t)
	upIssuer, downIssuer := fmt.Sprintf("http://%s:%d", upHost, upPort), fmt.Sprintf("http://%s:%d", downHost, downPort)
	up, upLogs := startMain(t, testConfig(t, func(c *config.Config) {
		c.HTTP.Addr, c.Issuer = fmt.Sprintf("127.0.0.1:%d", upPort), upIssuer
		c.UI.ProductName = "Corp SSO"
	}), nil)
	ctx := t.Context()
	if _, err := up.Server.Users().Create(ctx, users.NewUser{Username: "carol", Password: "carol's long password", Email: "carol@corp.example", Name: "Carol"}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := up.Server.Clients().Create(ctx, clients.Client{ID: "signet", ClientName: "Signet", GrantTypes: []string{clients.GrantAuthorizationCode},
		Scopes: []string{"openid", "email", "profile"}, Audiences: []string{"api"}, FirstParty: true,
		RedirectURIs:           []string{downIssuer + "/login/upstream/corp/callback"},
		PostLogoutRedirectURIs: []string{downIssuer + "/login/upstream/corp/logout/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "corp-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	down, downLogs := startMain(t, testConfig(t, func(c *config.Config) {
		c.HTTP.Addr, c.Issuer = fmt.Sprintf("127.0.0.1:%d", downPort), downIssuer
		c.Login.Upstreams = []config.Upstream{{ID: "corp", Name: "Corp SSO", Issuer: upIssuer, ClientID: "signet", ClientSecretFile: secretFile,
			Claims: map[string]string{"email": "email", "name": "name"}}}
		if editDown != nil {
			editDown(c)
		}
	}), now)
	return upstreamPair{up: up, down: down, upIssuer: upIssuer, downIssuer: downIssuer, downLogs: downLogs,
		logs: func() string { return "down:\n" + downLogs.String() + "\nup:\n" + upLogs.String() }}
}
