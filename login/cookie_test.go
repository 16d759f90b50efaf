package login_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/login"
)

// setCookie returns the cookie name that h sets, or nil.
func setCookie(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestBrowserCookie_ServerMadeOnly (issue 16, item 6): a browser-binding
// cookie the client chose (any 43 characters, or the server's format with
// a forged MAC) is replaced by one the server makes; the server's own
// value is kept, and a form posted with the planted value is refused.
func TestBrowserCookie_ServerMadeOnly(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.webClient("web", nil)
	u, _ := url.Parse(e.issuer)
	for name, planted := range map[string]string{
		"43 characters":    strings.Repeat("A", 43),
		"forged MAC":       strings.Repeat("A", 43) + "." + strings.Repeat("B", 43),
		"empty":            "",
		"another's format": strings.Repeat("A", 42) + "." + strings.Repeat("B", 43),
	} {
		b := e.browser()
		b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: login.BrowserCookie, Value: planted}})
		_, ch := signettest.PKCE()
		p := b.Authorize(authzQuery(ch, nil))
		set := setCookie(p.Header, login.BrowserCookie)
		if set == nil || set.Value == planted || len(set.Value) != 87 {
			t.Errorf("%s: the planted browser cookie was adopted (Set-Cookie %v)", name, set)
			continue
		}
		// The login form is bound to the server's value: posted with the
		// planted one (an attacker who fixed it), it is refused.
		action, form := signettest.FormOf(t, p)
		form.Set("username", "alice")
		form.Set("password", alicePassword)
		attacker := e.browser()
		attacker.Client.Jar.SetCookies(u, []*http.Cookie{{Name: login.BrowserCookie, Value: planted}})
		if r := attacker.Post(e.issuer+action, form); r.Status != http.StatusForbidden {
			t.Errorf("%s: form posted with the planted cookie = %d, want 403", name, r.Status)
		}
		// The server's value is kept on the next page.
		_, ch = signettest.PKCE()
		if again := b.Authorize(authzQuery(ch, nil)); setCookie(again.Header, login.BrowserCookie) != nil {
			t.Errorf("%s: the server's own browser cookie was replaced", name)
		}
	}
}

// TestCookies_HostPrefixOnHTTPS (issue 16, item 6): on an https issuer the
// browser, session and refresh token cookies carry the __Host- prefix
// (Secure, Path=/, no Domain), and a bare-named cookie, which a sibling
// subdomain could set, is not read.
func TestCookies_HostPrefixOnHTTPS(t *testing.T) {
	e := newEnv(t, envOptions{tls: true})
	secret := e.webClient("web", func(c *clients.Client) {
		c.RefreshTokenCookie = true
		c.DefaultScopes = []string{"openid", "offline_access"}
	})
	hostOnly := func(what string, h http.Header, name string) *http.Cookie {
		t.Helper()
		c := setCookie(h, "__Host-"+name)
		if c == nil {
			t.Fatalf("%s: no __Host-%s cookie set (Set-Cookie %q)", what, name, h.Values("Set-Cookie"))
		}
		if !c.Secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly {
			t.Errorf("%s: %s = %+v, want Secure, HttpOnly, Path=/ and no Domain", what, c.Name, c)
		}
		if setCookie(h, name) != nil {
			t.Errorf("%s: a bare %s cookie is set too", what, name)
		}
		return c
	}
	b := e.browser()
	v, ch := signettest.PKCE()
	p := b.Authorize(authzQuery(ch, url.Values{"scope": {"openid offline_access"}}))
	hostOnly("login page", p.Header, login.BrowserCookie)
	lp := b.login(p, "alice", alicePassword)
	sess := hostOnly("login", lp.Header, login.SessionCookie)
	cb := codeFrom(t, lp)
	tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v)
	if tr.status != http.StatusOK {
		t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	rt := hostOnly("token response", tr.header, "signet_refresh_token")

	// The refresh grant reads the prefixed cookie only.
	refresh := func(name, value string) int {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader("grant_type=refresh_token"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("web", secret)
		req.AddCookie(&http.Cookie{Name: name, Value: value})
		resp, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := refresh("signet_refresh_token", rt.Value); s != http.StatusBadRequest {
		t.Errorf("refresh with a bare-named cookie = %d, want 400", s)
	}
	if s := refresh(rt.Name, rt.Value); s != http.StatusOK {
		t.Errorf("refresh with the __Host- cookie = %d, want 200", s)
	}

	// A sibling subdomain's bare signet_session is not the session.
	u, _ := url.Parse(e.issuer)
	b2 := e.browser()
	b2.Client.Jar.SetCookies(u, []*http.Cookie{{Name: login.SessionCookie, Value: sess.Value}})
	_, ch = signettest.PKCE()
	if p := b2.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})); p.Location == nil || p.Location.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none with a bare session cookie = %d %v, want login_required", p.Status, p.Location)
	}
	_, ch = signettest.PKCE()
	if p := b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})); p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Errorf("prompt=none with the __Host- session cookie = %d %v, want a code", p.Status, p.Location)
	}
}
