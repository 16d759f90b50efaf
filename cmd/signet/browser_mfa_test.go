//go:build browser

package main

import (
	"context"
	"encoding/base32"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/totp"
	"github.com/signet-auth/signet/users"
)

// factorBrowser is what the second-factor browser tests share: a real
// signet serve on 127.0.0.1 with its clock, the user alice, the go-oidc
// relying party with the first-party client "notes", and a headless
// Chromium with its steps (a failed step reports the page and the logs).
type factorBrowser struct {
	*chromium
	m    *Main
	c    config.Config
	clk  *clock
	rp   *relyingParty
	logs *signettest.LogBuffer
}

// startFactorBrowser starts the server (mod changes its config) and Chromium.
func startFactorBrowser(t *testing.T, mod func(*config.Config)) *factorBrowser {
	t.Helper()
	h := &factorBrowser{clk: &clock{now: time.Now().Truncate(time.Second)}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h.c = testConfig(t, func(c *config.Config) {
		c.HTTP.Addr = addr
		c.Issuer = "http://" + addr
		c.Keys.Algorithms = []string{"RS256"}
		if mod != nil {
			mod(c)
		}
	})
	h.m, h.logs = startMain(t, h.c, h.clk.Now)
	ctx := context.Background()
	if _, err := h.m.Server.Users().Create(ctx, users.NewUser{Username: "alice", Password: "correct horse battery", Email: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	h.rp = newRelyingParty(t, h.c.Issuer, h.clk.Now)
	_, secret, err := h.m.Server.Clients().Create(ctx, clients.Client{ID: "notes", ClientName: "Notes", FirstParty: true,
		GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid", "profile", "email"}, Audiences: []string{"api"},
		RedirectURIs: []string{h.rp.srv.URL + "/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	h.rp.register("notes", secret)

	h.chromium = newChromium(t, 480, 900, h.logs.String)
	return h
}

// idClaims are acr and amr of the relying party's last verified ID token.
func (h *factorBrowser) idClaims() (string, []string) {
	h.t.Helper()
	h.rp.mu.Lock()
	idt := h.rp.last["notes"]
	h.rp.mu.Unlock()
	var cl struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&cl); err != nil {
		h.t.Fatal(err)
	}
	return cl.ACR, cl.AMR
}

// aliceSignIn fills in and sends alice's sign-in form.
var aliceSignIn = passwordSignIn("alice", "correct horse battery")

// typeCode types code into the page's code field and sends it.
func typeCode(code string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.CSS("#code")),
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	}
}

// TestBrowserSecondFactor drives headless Chromium through second factors
// against a real signet serve and the go-oidc relying party: a password
// sign-in, TOTP set-up on the account page (QR code, key read from the
// page, first code computed by the test, recovery codes), step-up of the
// password session by acr_values, a wrong code, and a sign-in with a
// recovery code; the relying party checks acr and amr in each verified ID
// token. Screenshots go to docs/img with SIGNET_UPDATE_SCREENSHOTS=1.
func TestBrowserSecondFactor(t *testing.T) {
	h := startFactorBrowser(t, nil)
	c, clk, rp, bctx, step, shot, text := h.c, h.clk, h.rp, h.ctx, h.step, h.shot, h.text
	idClaims, enterCode, password := h.idClaims, typeCode, aliceSignIn

	// 1. A password sign-in: acr pwd.
	step("password sign-in", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.srv.URL + "/login?client=notes")},
		append(password, chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)...)
	if acr, amr := idClaims(); acr != sessions.ACRPassword || !slices.Equal(amr, []string{"pwd"}) {
		t.Fatalf("password sign-in: acr %q amr %v", acr, amr)
	}

	// 2. The account page: set up an authenticator app with the key read
	// from the page and a code computed here.
	step("account", chromedp.Navigate(c.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS("#totp-status")))
	shot("account.png")
	step("set up", chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#totp-secret")), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	shot("totp-setup.png")
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(text("#totp-secret"), " ", ""))
	if err != nil {
		t.Fatalf("key on the page: %v", err)
	}
	if w, err := chromedp.Run(bctx, chromedp.Evaluate[int]("document.querySelector('img.qr').naturalWidth")); err != nil || w != 256 {
		t.Fatalf("QR code image width %d (%v)", w, err)
	}
	step("confirm", append(enterCode(totp.Code(key, totp.Step(clk.Now()))), chromedp.WaitVisible(chromedp.CSS("#recovery-codes")))...)
	shot("recovery-codes.png")
	codes := strings.Fields(text("#recovery-codes"))
	if len(codes) != 10 {
		t.Fatalf("recovery codes on the page: %q", codes)
	}

	// 3. Step-up: acr_values asks the password session for a code.
	clk.Add(totp.Period)
	step("step-up", chromedp.Navigate(rp.srv.URL+"/login?client=notes&acr_values="+sessions.ACRMFA), chromedp.WaitVisible(chromedp.CSS("#code")))
	shot("otp.png")
	step("wrong code", append(enterCode("000000"), chromedp.WaitVisible(chromedp.CSS("#code-error")))...)
	shot("otp-error.png")
	step("right code", append(enterCode(totp.Code(key, totp.Step(clk.Now()))), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)
	if acr, amr := idClaims(); acr != sessions.ACRMFA || !slices.Equal(amr, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("after step-up: acr %q amr %v", acr, amr)
	}

	// 4. prompt=login: the password, then a recovery code.
	clk.Add(time.Minute)
	step("prompt=login", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.srv.URL + "/login?client=notes&prompt=login")},
		append(password, append(enterCode(codes[0]), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)...)...)
	if acr, _ := idClaims(); acr != sessions.ACRMFA {
		t.Fatalf("recovery code sign-in: acr %q", acr)
	}
	step("account after", chromedp.Navigate(c.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS("#totp-status")))
	if got := text("#totp-status"); !strings.Contains(got, "Recovery codes left: 9") {
		t.Fatalf("account page after a recovery code: %q", got)
	}
}

// TestBrowserEnrolRequired: with login.second_factor.required_for all, a
// user without a second factor is reminded after the password during the
// grace period and continues to the relying party; past the grace period
// the password leads to setting up an authenticator app (key read from the
// page, code computed here), then the recovery codes, then the relying
// party, whose verified ID token says two factors. Screenshots go to
// docs/img with SIGNET_UPDATE_SCREENSHOTS=1.
func TestBrowserEnrolRequired(t *testing.T) {
	h := startFactorBrowser(t, func(c *config.Config) {
		c.Login.SecondFactor = config.LoginSecondFactor{RequiredFor: "all", Grace: "168h"}
	})
	h.step("sign-in during the grace period", append(append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(h.rp.srv.URL + "/login?client=notes")},
		aliceSignIn...), chromedp.WaitVisible(chromedp.CSS("#factor-due")))...)
	if due := h.text("#factor-due"); !strings.Contains(due, "You must set up a second factor by "+h.clk.Now().Add(168*time.Hour).UTC().Format("2 January 2006")) {
		t.Fatalf("reminder: %q", due)
	}
	h.shot("login-grace-reminder.png")
	h.step("continue", chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))
	if acr, _ := h.idClaims(); acr != sessions.ACRPassword {
		t.Fatalf("sign-in during the grace period: acr %q", acr)
	}

	h.clk.Add(169 * time.Hour)
	h.step("sign-in after the grace period", append(append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(h.rp.srv.URL + "/login?client=notes&prompt=login")},
		aliceSignIn...), chromedp.WaitVisible(chromedp.CSS("#totp-secret")), chromedp.WaitVisible(chromedp.CSS("img.qr")), chromedp.WaitVisible(chromedp.CSS("#factor-required")))...)
	h.shot("login-enrol-required.png")
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(h.text("#totp-secret"), " ", ""))
	if err != nil {
		t.Fatalf("key on the page: %v", err)
	}
	h.step("first code", append(typeCode(totp.Code(key, totp.Step(h.clk.Now()))), chromedp.WaitVisible(chromedp.CSS("#recovery-codes")))...)
	if codes := strings.Fields(h.text("#recovery-codes")); len(codes) != 10 {
		t.Fatalf("recovery codes on the page: %q", codes)
	}
	h.step("continue to the application", chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))
	if acr, amr := h.idClaims(); acr != sessions.ACRMFA || !slices.Equal(amr, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("sign-in with the enrolment: acr %q amr %v", acr, amr)
	}
}
