//go:build browser

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/signet-auth/signet/config"
)

// TestBrowserDeviceSignInUpstreamOnly drives headless Chromium through
// the device flow of an upstream-only deployment (password_login: false,
// one provider: another signet serve), with x/oauth2's DeviceAuth and
// DeviceAccessToken polling as a terminal program does. The device page's
// sign-in has no password form, only "Sign in with Corp SSO" and "Sign in
// with a passkey"; the provider's button signs carol in and comes back to
// the device's confirmation, and the terminal gets its token. Carol then
// adds a passkey on the account page (signed in through the provider),
// signs out, and logs a second terminal in with the passkey alone.
// Screenshot: device-signin-upstream.png.
func TestBrowserDeviceSignInUpstreamOnly(t *testing.T) {
	// down is localhost, since a WebAuthn RP ID cannot be an IP address;
	// the real clock: x/oauth2 waits the interval in real time.
	pair := startUpstreamPair(t, "127.0.0.1", "localhost", time.Now, func(c *config.Config) {
		c.Keys.Algorithms = []string{"RS256"}
		c.Login.PasswordLogin = false
	})
	down, upIssuer, downIssuer := pair.down, pair.upIssuer, pair.downIssuer
	ctx := t.Context()
	if _, _, err := down.Server.Clients().Create(ctx, deviceCLIClient); err != nil {
		t.Fatal(err)
	}
	b := newChromium(t, 480, 760, pair.logs)
	b.step("virtual authenticator", virtualAuthenticator())

	// terminal starts a device login as x/oauth2 does; wait returns its token.
	terminal := func(name string) (*oauth2.DeviceAuthResponse, func() *oauth2.Token) {
		t.Helper()
		cfg := &oauth2.Config{ClientID: "cli", Scopes: []string{"openid", "read"}, Endpoint: oauth2.Endpoint{
			DeviceAuthURL: downIssuer + "/oauth2/device_authorization", TokenURL: downIssuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
		da, err := cfg.DeviceAuth(ctx)
		if err != nil {
			t.Fatalf("%s: DeviceAuth: %v", name, err)
		}
		type result struct {
			tok *oauth2.Token
			err error
		}
		done := make(chan result, 1)
		pollCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		t.Cleanup(cancel)
		go func() {
			tok, err := cfg.DeviceAccessToken(pollCtx, da)
			done <- result{tok, err}
		}()
		return da, func() *oauth2.Token {
			t.Helper()
			r := <-done // pollCtx bounds the wait
			if r.err != nil || r.tok.AccessToken == "" {
				t.Fatalf("%s: DeviceAccessToken: %v\nlogs:\n%s", name, r.err, b.logs())
			}
			return r.tok
		}
	}
	noPassword := func(what string) {
		t.Helper()
		if has, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("document.querySelector('#password') !== null")); err != nil || has {
			t.Fatalf("%s: a password field is on the page (%v)", what, err)
		}
	}
	button := `form[action$="/login/upstream/corp"] button`

	da, wait := terminal("first terminal")
	b.step("device page", chromedp.Navigate(da.VerificationURIComplete), chromedp.WaitVisible(chromedp.CSS("#user_code")),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(button)),
		chromedp.WaitVisible(chromedp.CSS("#sign-in-passkey")))
	noPassword("device sign-in")
	b.shot("device-signin-upstream.png")
	b.step("the provider's button", chromedp.Click(chromedp.CSS(button)), chromedp.WaitNotPresent(chromedp.CSS(button)),
		chromedp.WaitVisible(chromedp.CSS("#password")))
	if loc := b.location(); !strings.HasPrefix(loc, upIssuer+"/") {
		t.Fatalf("the button went to %s, want the provider", loc)
	}
	b.step("carol at the provider", append(passwordSignIn("carol", "carol's long password"), chromedp.WaitVisible(chromedp.CSS("#user-code")))...)
	if got := b.text("#user-code"); got != da.UserCode {
		t.Fatalf("confirmation after the provider shows %q, want %q", got, da.UserCode)
	}
	b.step("allow", chromedp.Click(chromedp.CSS(`button[value=allow]`)), chromedp.WaitVisible(chromedp.CSS("#device-done")))
	wait()

	// Signed in through the provider, carol adds a passkey, then signs out.
	b.step("account", chromedp.Navigate(downIssuer+"/account"), chromedp.WaitVisible(chromedp.CSS("#add-passkey")))
	b.step("add a passkey", chromedp.SendKeys(chromedp.CSS("#passkey-name"), "laptop"), chromedp.Click(chromedp.CSS("#add-passkey")),
		chromedp.WaitVisible(chromedp.CSS("ul#passkeys")))
	b.step("sign out", chromedp.Navigate(downIssuer+"/oauth2/logout"), chromedp.Click(chromedp.CSS(`button[value=logout]`)),
		chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))

	da, wait = terminal("second terminal")
	b.step("device page again", chromedp.Navigate(da.VerificationURIComplete), chromedp.WaitVisible(chromedp.CSS("#user_code")),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#sign-in-passkey")))
	noPassword("device sign-in after sign-out")
	b.step("the passkey alone", chromedp.Click(chromedp.CSS("#sign-in-passkey")), chromedp.WaitVisible(chromedp.CSS("#user-code")))
	if got := b.text("#user-code"); got != da.UserCode {
		t.Fatalf("confirmation after the passkey shows %q, want %q", got, da.UserCode)
	}
	b.step("allow again", chromedp.Click(chromedp.CSS(`button[value=allow]`)), chromedp.WaitVisible(chromedp.CSS("#device-done")))
	wait()
}
