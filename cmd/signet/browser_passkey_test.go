//go:build browser

package main

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/sessions"
)

// TestBrowserPasskey drives headless Chromium with Chrome's virtual
// authenticator (the DevTools WebAuthn domain) against a real signet serve
// on http://localhost (an IP address cannot be a WebAuthn RP ID): a
// passkey added on the account page, then a sign-in that asks for it after
// the password, then, signed out, a sign-in with the passkey alone; the
// go-oidc relying party checks acr and amr.
// Screenshots go to docs/img with SIGNET_UPDATE_SCREENSHOTS=1.
func TestBrowserPasskey(t *testing.T) {
	b := startFactorBrowser(t, func(c *config.Config) {
		_, port, _ := net.SplitHostPort(c.HTTP.Addr)
		c.Issuer = "http://localhost:" + port
	})
	c, rp, idClaims := b.c, b.rp, b.idClaims
	password := passwordSignIn("alice", "correct horse battery")
	// Chrome's virtual authenticator: a platform authenticator that
	// verifies the user and answers at once.
	b.step("virtual authenticator", virtualAuthenticator())

	b.step("password sign-in", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.srv.URL + "/login?client=notes")},
		append(password, chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)...)
	b.step("account", chromedp.Navigate(c.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS("#add-passkey")))
	b.step("add a passkey", chromedp.SendKeys(chromedp.CSS("#passkey-name"), "laptop"), chromedp.Click(chromedp.CSS("#add-passkey")),
		chromedp.WaitVisible(chromedp.CSS("ul#passkeys")))
	if got := b.text("ul#passkeys"); !strings.Contains(got, "laptop") {
		t.Fatalf("passkeys on the account page: %q", got)
	}
	// This browser signed in with the password alone, and alice has a
	// second factor now: the page adds nothing until she uses it.
	if got := b.text("#factors-locked"); !strings.Contains(got, "signed in without it") {
		t.Fatalf("account page of a password session: %q", got)
	}

	b.step("prompt=login", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.srv.URL + "/login?client=notes&prompt=login")},
		append(password, chromedp.WaitVisible(chromedp.CSS("#use-passkey")))...)...)
	b.shot("passkey-signin.png")
	b.step("use the passkey", chromedp.Click(chromedp.CSS("#use-passkey")), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))
	if acr, amr := idClaims(); acr != sessions.ACRMFA || !slices.Equal(amr, []string{"pwd", "swk", "mfa"}) {
		t.Fatalf("passkey sign-in: acr %q amr %v", acr, amr)
	}
	// Signed out, alice signs in with the passkey alone (it was registered
	// discoverable, and the authenticator verifies her): the ID token has
	// the key and the verification, two factors.
	b.step("sign out", chromedp.Navigate(c.Issuer+"/oauth2/logout"), chromedp.Click(chromedp.CSS(`button[value=logout]`)),
		chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
	b.step("sign-in page", chromedp.Navigate(rp.srv.URL+"/login?client=notes"), chromedp.WaitVisible(chromedp.CSS("#sign-in-passkey")))
	b.shot("login-passkey.png")
	b.step("sign in with the passkey alone", chromedp.Click(chromedp.CSS("#sign-in-passkey")), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))
	if acr, amr := idClaims(); acr != sessions.ACRMFA || !slices.Equal(amr, []string{"swk", "user", "mfa"}) {
		t.Fatalf("passwordless passkey sign-in: acr %q amr %v", acr, amr)
	}
	// Signed in with the passkey: the account page manages passkeys.
	b.step("account after", chromedp.Navigate(c.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS("#add-passkey")))
	b.shot("passkeys.png")
	b.step("remove", chromedp.Click(chromedp.CSS("form.remove button")), chromedp.WaitVisible(chromedp.CSS("p#passkeys")))
}

// virtualAuthenticator turns on Chrome's virtual authenticator (the
// DevTools WebAuthn domain): a platform authenticator that keeps resident
// keys, verifies its user and answers at once.
func virtualAuthenticator() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
		return err
	})
}
