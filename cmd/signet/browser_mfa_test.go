//go:build browser

package main

import (
	"context"
	"encoding/base32"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/totp"
	"github.com/signet-auth/signet/users"
)

// TestBrowserSecondFactor drives headless Chromium through second factors
// against a real signet serve and the go-oidc relying party: a password
// sign-in, TOTP set-up on the account page (QR code, key read from the
// page, first code computed by the test, recovery codes), step-up of the
// password session by acr_values, a wrong code, and a sign-in with a
// recovery code; the relying party checks acr and amr in each verified ID
// token. Screenshots go to docs/img with SIGNET_UPDATE_SCREENSHOTS=1.
func TestBrowserSecondFactor(t *testing.T) {
	chrome := chromiumPath(t)
	clk := &clock{now: time.Now().Truncate(time.Second)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := testConfig(t, func(c *config.Config) {
		c.HTTP.Addr = addr
		c.Issuer = "http://" + addr
		c.Keys.Algorithms = []string{"RS256"}
	})
	m, logs := startMain(t, c, clk.Now)
	ctx := context.Background()
	if _, err := m.Server.Users().Create(ctx, users.NewUser{Username: "alice", Password: "correct horse battery", Email: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	rp := newRelyingParty(t, c.Issuer, clk.Now)
	_, secret, err := m.Server.Clients().Create(ctx, clients.Client{ID: "notes", ClientName: "Notes", FirstParty: true,
		GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid", "profile", "email"}, Audiences: []string{"api"},
		RedirectURIs: []string{rp.srv.URL + "/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	rp.register("notes", secret)

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(480, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	update := os.Getenv("SIGNET_UPDATE_SCREENSHOTS") == "1"
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			body, _ := chromedp.Run(bctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			t.Fatalf("%s: %v\nat %s\npage: %s\nsignet logs:\n%s", name, err, loc, body, logs)
		}
	}
	shot := func(file string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", file, err)
		}
		dir := t.TempDir()
		if update {
			dir = filepath.Join("..", "..", "docs", "img")
		}
		if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text %s: %v", sel, err)
		}
		return s
	}
	idClaims := func() (string, []string) {
		t.Helper()
		rp.mu.Lock()
		idt := rp.last["notes"]
		rp.mu.Unlock()
		var cl struct {
			ACR string   `json:"acr"`
			AMR []string `json:"amr"`
		}
		if err := idt.Claims(&cl); err != nil {
			t.Fatal(err)
		}
		return cl.ACR, cl.AMR
	}
	enterCode := func(code string) []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.WaitVisible(chromedp.CSS("#code")),
			chromedp.SendKeys(chromedp.CSS("#code"), code),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		}
	}
	password := []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	}

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
