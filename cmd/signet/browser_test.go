//go:build browser

package main

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/users"
)

// browserNote is empty: the browser tests are built (browser_off_test.go).
const browserNote = ""

// chromiumPath finds the system Chromium. Built with -tags browser, the
// test never skips: .ci/run installs Debian's chromium and runs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install Debian's chromium (apt-get install -y chromium); .ci/run does")
	return ""
}

// chromium is one headless Chromium for a browser test, with what every
// such test does: steps that fail the test showing the page and the
// servers' logs, screenshots (also written to docs/img with
// SIGNET_UPDATE_SCREENSHOTS=1), and an element's text.
type chromium struct {
	t      *testing.T
	ctx    context.Context
	logs   func() string
	shots  string
	update bool
}

// newChromium starts Chromium with a width x height viewport; logs
// returns the servers' logs for a failure's message.
func newChromium(t *testing.T, width, height int64, logs func() string) *chromium {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &chromium{t: t, ctx: bctx, logs: logs, shots: t.TempDir(), update: os.Getenv("SIGNET_UPDATE_SCREENSHOTS") == "1"}
}

// step runs actions within 30 s or fails the test.
func (b *chromium) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		b.t.Fatalf("%s: %v\nat %s\npage: %s\nsignet logs:\n%s", name, err, loc, body, b.logs())
	}
}

// shot saves a screenshot of the page as file.
func (b *chromium) shot(file string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", file, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, file), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if b.update {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", file), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// text is the text of the element sel.
func (b *chromium) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text %s: %v", sel, err)
	}
	return s
}

// location is the page's URL.
func (b *chromium) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("location: %v", err)
	}
	return loc
}

// passwordSignIn fills Signet's login form and submits it.
func passwordSignIn(username, password string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	}
}

// relyingParty is a Go web app that logs its users in at Signet the way
// the README tells one to: go-oidc for discovery and ID token verification,
// x/oauth2 for the code exchange with PKCE.
type relyingParty struct {
	t        *testing.T
	srv      *httptest.Server
	provider *oidc.Provider
	now      func() time.Time
	clients  map[string]*oauth2.Config

	mu      sync.Mutex
	pending map[string]pendingLogin // by state
	last    map[string]*oidc.IDToken
	rawID   map[string]string
}

type pendingLogin struct {
	client, nonce, verifier string
}

func newRelyingParty(t *testing.T, issuer string, now func() time.Time) *relyingParty {
	rp := &relyingParty{t: t, now: now, clients: map[string]*oauth2.Config{}, pending: map[string]pendingLogin{},
		last: map[string]*oidc.IDToken{}, rawID: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", rp.login)
	mux.HandleFunc("/cb", rp.callback)
	mux.HandleFunc("/logout", rp.logout)
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!DOCTYPE html><title>RP</title><p id="bye">signed out state=%s</p>`, html.EscapeString(r.URL.Query().Get("state")))
	})
	rp.srv = httptest.NewServer(mux)
	t.Cleanup(rp.srv.Close)
	p, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	rp.provider = p
	return rp
}

func (rp *relyingParty) register(id, secret string) {
	rp.clients[id] = &oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.srv.URL + "/cb", Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
}

// login starts a login for ?client=ID with optional prompt and max_age.
func (rp *relyingParty) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	conf := rp.clients[q.Get("client")]
	state, nonce, verifier := oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.pending[state] = pendingLogin{client: q.Get("client"), nonce: nonce, verifier: verifier}
	rp.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	for _, k := range []string{"prompt", "max_age", "acr_values"} {
		if v := q.Get(k); v != "" {
			opts = append(opts, oauth2.SetAuthURLParam(k, v))
		}
	}
	http.Redirect(w, r, conf.AuthCodeURL(state, opts...), http.StatusFound)
}

// callback redeems the code, verifies the ID token and calls userinfo.
func (rp *relyingParty) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rp.mu.Lock()
	pl, ok := rp.pending[q.Get("state")]
	delete(rp.pending, q.Get("state"))
	rp.mu.Unlock()
	fail := func(msg string) {
		fmt.Fprintf(w, `<!DOCTYPE html><title>RP</title><p id="rp-error">%s</p>`, html.EscapeString(msg))
	}
	switch {
	case !ok:
		fail("unknown state")
		return
	case q.Get("iss") != rp.provider.Endpoint().AuthURL[:strings.Index(rp.provider.Endpoint().AuthURL, "/oauth2/")]:
		fail("wrong iss " + q.Get("iss"))
		return
	case q.Get("error") != "":
		fail("error=" + q.Get("error"))
		return
	}
	conf := rp.clients[pl.client]
	ctx := r.Context()
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pl.verifier))
	if err != nil {
		fail("exchange: " + err.Error())
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: pl.client, Now: rp.now}).Verify(ctx, raw)
	if err != nil {
		fail("verify: " + err.Error())
		return
	}
	if idt.Nonce != pl.nonce {
		fail("nonce mismatch")
		return
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		fail("at_hash: " + err.Error())
		return
	}
	ui, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		fail("userinfo: " + err.Error())
		return
	}
	if ui.Subject != idt.Subject {
		fail("userinfo sub differs")
		return
	}
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	_ = idt.Claims(&c)
	rp.mu.Lock()
	rp.last[pl.client], rp.rawID[pl.client] = idt, raw
	rp.mu.Unlock()
	fmt.Fprintf(w, `<!DOCTYPE html><title>RP</title><p id="rp-ok">client=%s sub=%s email=%s auth_time=%d</p>`,
		html.EscapeString(pl.client), html.EscapeString(idt.Subject), html.EscapeString(ui.Email), c.AuthTime)
}

// logout sends the browser to Signet's end_session_endpoint with the last
// ID token of ?client=ID as the hint.
func (rp *relyingParty) logout(w http.ResponseWriter, r *http.Request) {
	var md struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = rp.provider.Claims(&md)
	client := r.URL.Query().Get("client")
	rp.mu.Lock()
	raw := rp.rawID[client]
	rp.mu.Unlock()
	v := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {rp.srv.URL + "/bye"}, "state": {"bye-state"}}
	http.Redirect(w, r, md.EndSession+"?"+v.Encode(), http.StatusFound)
}

func (rp *relyingParty) authTime(client string) int64 {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	if t := rp.last[client]; t != nil {
		_ = t.Claims(&c)
	}
	return c.AuthTime
}

// TestBrowserLogin drives headless Chromium through the whole browser
// login against a real signet serve: login form, code exchange and ID
// token verification in a go-oidc relying party, userinfo, SSO into a
// second client, prompt=login, max_age=1, consent for a third-party
// client, an expired form, an unregistered redirect URI, logout (with and
// without id_token_hint) and prompt=none after it. It saves a screenshot
// of every Signet page it sees; SIGNET_UPDATE_SCREENSHOTS=1 writes them to
// docs/img for the docs.
func TestBrowserLogin(t *testing.T) {
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
		c.Keys.Algorithms = []string{"RS256", "ES256"}
	})
	m, logs := startMain(t, c, clk.Now)
	ctx := context.Background()
	if _, err := m.Server.Users().Create(ctx, users.NewUser{Username: "alice", Password: "correct horse battery",
		Email: "alice@example.com", EmailVerified: true, Name: "Alice Liddell"}); err != nil {
		t.Fatal(err)
	}
	rp := newRelyingParty(t, c.Issuer, clk.Now)
	for _, cl := range []clients.Client{
		{ID: "notes", ClientName: "Notes", FirstParty: true},
		{ID: "calendar", ClientName: "Calendar", FirstParty: true},
		{ID: "photo-print", ClientName: "Photo Print Shop"},
	} {
		cl.GrantTypes = []string{clients.GrantAuthorizationCode}
		cl.Scopes = []string{"openid", "profile", "email"}
		cl.Audiences = []string{"api"}
		cl.RedirectURIs = []string{rp.srv.URL + "/cb"}
		cl.PostLogoutRedirectURIs = []string{rp.srv.URL + "/bye"}
		_, secret, err := m.Server.Clients().Create(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		rp.register(cl.ID, secret)
	}

	b := newChromium(t, 480, 760, logs.String)
	bctx, step, shot, text := b.ctx, b.step, b.shot, b.text
	signIn := func(password string) []chromedp.Action[chromedp.Void] { return passwordSignIn("alice", password) }

	// 1. The login page; a form left open too long explains itself and
	// starts again; a wrong password; then the login.
	step("open login", chromedp.Navigate(rp.srv.URL+"/login?client=notes"), chromedp.WaitVisible(chromedp.CSS("#username")))
	shot("login.png")
	// Narrow screens: at 320 px nothing scrolls sideways.
	step("320px", chromedp.EmulateViewport(320, 640))
	if w, err := chromedp.Run(bctx, chromedp.Evaluate[int]("document.documentElement.scrollWidth")); err != nil || w > 320 {
		t.Errorf("login page at 320 px is %d px wide (%v)", w, err)
	}
	shot("login-320.png")
	step("back to 480px", chromedp.EmulateViewport(480, 760))
	clk.Add(16 * time.Minute)
	step("expired form", append(signIn("correct horse battery"), chromedp.WaitVisible(chromedp.CSS("a.button")))...)
	if got := text("h1"); got != "This page has expired" {
		t.Fatalf("expired page heading = %q", got)
	}
	shot("expired.png")
	step("start again", chromedp.Click(chromedp.CSS("a.button")), chromedp.WaitVisible(chromedp.CSS("#username")))
	step("wrong password", append(signIn("wrong password!"), chromedp.WaitVisible(chromedp.CSS("#password-error")))...)
	shot("login-error.png")
	step("log in", chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))
	if got := text("#rp-ok"); !strings.Contains(got, "client=notes") || !strings.Contains(got, "email=alice@example.com") {
		t.Fatalf("RP after login: %q", got)
	}
	first := rp.authTime("notes")

	// 2. SSO: the second client logs in with no form.
	clk.Add(5 * time.Second)
	step("sso", chromedp.Navigate(rp.srv.URL+"/login?client=calendar"), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))
	if rp.authTime("calendar") != first {
		t.Errorf("SSO auth_time = %d, want the first login's %d", rp.authTime("calendar"), first)
	}

	// 3. prompt=login asks again and auth_time moves.
	step("prompt=login", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.srv.URL + "/login?client=notes&prompt=login")},
		append(signIn("correct horse battery"), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)...)
	second := rp.authTime("notes")
	if second <= first {
		t.Errorf("prompt=login auth_time = %d, want after %d", second, first)
	}

	// 4. max_age=1 two seconds later asks again.
	clk.Add(2 * time.Second)
	step("max_age=1", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.srv.URL + "/login?client=calendar&max_age=1")},
		append(signIn("correct horse battery"), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)...)
	if got := rp.authTime("calendar"); got <= second {
		t.Errorf("max_age=1 auth_time = %d, want after %d", got, second)
	}

	// 5. A third-party client asks for consent once.
	step("consent", chromedp.Navigate(rp.srv.URL+"/login?client=photo-print"), chromedp.WaitVisible(chromedp.CSS(`button[value=allow]`)))
	if got := text("h1"); !strings.Contains(got, "Photo Print Shop") {
		t.Errorf("consent heading = %q", got)
	}
	shot("consent.png")
	step("allow", chromedp.Click(chromedp.CSS(`button[value=allow]`)), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))
	step("consent remembered", chromedp.Navigate(rp.srv.URL+"/login?client=photo-print"), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))

	// 6. An unregistered redirect URI is a page at Signet, never a redirect.
	bad := c.Issuer + "/oauth2/authorize?" + url.Values{"client_id": {"notes"}, "response_type": {"code"},
		"redirect_uri": {"https://evil.example/cb"}, "scope": {"openid"}}.Encode()
	step("bad redirect", chromedp.Navigate(bad), chromedp.WaitVisible(chromedp.CSS("h1")))
	if loc, _ := chromedp.Run(bctx, chromedp.Location()); !strings.HasPrefix(loc, c.Issuer) {
		t.Fatalf("bad redirect_uri left Signet: %s", loc)
	}
	shot("error.png")

	// 7. Logout without a hint asks first; then prompt=none gets login_required.
	step("logout page", chromedp.Navigate(c.Issuer+"/oauth2/logout"), chromedp.WaitVisible(chromedp.CSS(`button[value=logout]`)))
	shot("logout.png")
	step("sign out", chromedp.Click(chromedp.CSS(`button[value=logout]`)), chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
	shot("signed-out.png")
	step("prompt=none after logout", chromedp.Navigate(rp.srv.URL+"/login?client=notes&prompt=none"), chromedp.WaitVisible(chromedp.CSS("#rp-error")))
	if got := text("#rp-error"); got != "error=login_required" {
		t.Fatalf("prompt=none after logout: %q", got)
	}

	// 8. RP-initiated logout with id_token_hint returns to the RP with
	// state, and the session is gone.
	step("log in again", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.srv.URL + "/login?client=notes")},
		append(signIn("correct horse battery"), chromedp.WaitVisible(chromedp.CSS("#rp-ok")))...)...)
	step("rp logout", chromedp.Navigate(rp.srv.URL+"/logout?client=notes"), chromedp.WaitVisible(chromedp.CSS("#bye")))
	if got := text("#bye"); got != "signed out state=bye-state" {
		t.Fatalf("after RP logout: %q", got)
	}
	step("prompt=none after rp logout", chromedp.Navigate(rp.srv.URL+"/login?client=calendar&prompt=none"), chromedp.WaitVisible(chromedp.CSS("#rp-error")))
	if got := text("#rp-error"); got != "error=login_required" {
		t.Fatalf("prompt=none after RP logout: %q", got)
	}
}
