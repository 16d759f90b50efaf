package upstream_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/storage"
)

// rpLogout is the app's RP-initiated logout at down with its ID token,
// a return address and state.
func (pr *pair) rpLogout(b *browser, idToken, returnTo string) page {
	pr.t.Helper()
	return b.Get(pr.down.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {idToken},
		"post_logout_redirect_uri": {returnTo}, "state": {"rp-state"}}.Encode())
}

// toUpstreamLogout checks that p sends the browser to up's
// end_session_endpoint as RP-Initiated Logout asks and returns up's ID
// token it carries as id_token_hint.
func (pr *pair) toUpstreamLogout(p page) string {
	pr.t.Helper()
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), pr.up.issuer+"/oauth2/logout?") {
		pr.t.Fatalf("logout at down = %d, not sent to up's end_session_endpoint:\n%s", p.Status, p.Body)
	}
	q := p.Location.Query()
	hint := q.Get("id_token_hint")
	if c := signettest.Claims(pr.t, hint); c["iss"] != pr.up.issuer || c["aud"] != "corp" || c["sub"] != pr.carol {
		pr.t.Fatalf("id_token_hint claims %v: want up's ID token of carol for corp", c)
	}
	if q.Get("client_id") != "corp" || q.Get("post_logout_redirect_uri") != pr.down.issuer+"/login/upstream/corp/logout/callback" || q.Get("state") == "" {
		pr.t.Fatalf("end-session request %v", q)
	}
	return hint
}

// sessionRecords are the bytes of every SSO session down stores.
func (pr *pair) sessionRecords() [][]byte {
	pr.t.Helper()
	var out [][]byte
	err := pr.down.st.View(context.Background(), func(tx storage.Tx) error {
		return tx.Scan("sso_sessions", "", func(_ string, v []byte) error {
			out = append(out, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		pr.t.Fatal(err)
	}
	return out
}

// upAsksPassword starts a sign-in at down in b, clicks the button and
// reports whether up asks for the password (its session in b ended)
// rather than sending b straight back.
func (pr *pair) upAsksPassword(b *browser, button string) bool {
	pr.t.Helper()
	login, _ := pr.authorize(b)
	p := b.Follow(b.SubmitForm(pr.down.issuer, login, "Sign in with "+button, nil))
	if p.Location != nil {
		return false
	}
	if !strings.Contains(p.Body, `name="password"`) {
		pr.t.Fatalf("up answered %d, neither its login form nor a redirect:\n%s", p.Status, p.Body)
	}
	return true
}

// TestUpstreamLogout: a Signet session begun at the provider ends there
// too. The app's RP-initiated logout at down sends the browser to up's
// end_session_endpoint with up's ID token (kept sealed with the session,
// never in clear in storage or in a log), up ends its session and sends
// the browser back to down's logout callback, which goes on to the app's
// registered post_logout_redirect_uri with the app's state; the next
// sign-in asks up for the password again. A logout confirmed on down's
// page (no hint) goes the same way and its page says both sessions ended.
func TestUpstreamLogout(t *testing.T) {
	pr := newPair(t, true)
	b := newBrowser(t)
	pr.signIn(b)
	stored := pr.sessionRecords()
	if len(stored) != 1 || !bytes.Contains(stored[0], []byte(`"sealed_id_token"`)) {
		t.Fatalf("down's sessions: %q, want one with the sealed ID token", stored)
	}

	p := pr.rpLogout(b, pr.lastIDToken, appBye)
	hint := pr.toUpstreamLogout(p)
	p = b.Follow(p)
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), pr.down.issuer+"/login/upstream/corp/logout/callback?") {
		t.Fatalf("up's logout = %d, not sent back to down's callback:\n%s", p.Status, p.Body)
	}
	callback := p.Location.String()
	p = b.Follow(p)
	if p.Location == nil || p.Location.String() != appBye+"?state=rp-state" {
		t.Fatalf("down's logout callback = %d to %v, want the app's %s with its state:\n%s", p.Status, p.Location, appBye, p.Body)
	}
	if n := len(pr.sessionRecords()); n != 0 {
		t.Fatalf("down has %d sessions after the logout", n)
	}
	if !pr.upAsksPassword(b, "Corp SSO") {
		t.Fatal("up did not ask for the password again: its session was not ended")
	}

	// The upstream ID token was never in clear: not in down's stored
	// session, not in a log of either Signet, not in a cookie.
	for _, rec := range stored {
		if bytes.Contains(rec, []byte(hint)) || bytes.Contains(rec, []byte(strings.Split(hint, ".")[1])) {
			t.Fatalf("down's session record holds up's ID token in clear: %s", rec)
		}
	}
	for name, logs := range map[string]string{"down": pr.down.logs.String(), "up": pr.up.logs.String()} {
		if strings.Contains(logs, strings.Split(hint, ".")[1]) {
			t.Fatalf("%s's logs hold up's ID token:\n%s", name, logs)
		}
	}
	if !strings.Contains(pr.down.logs.String(), `"msg":"upstream logout"`) {
		t.Fatalf("down's logs lack the upstream logout line:\n%s", pr.down.logs.String())
	}
	for _, host := range []string{pr.down.issuer, pr.up.issuer} {
		u, _ := url.Parse(host)
		for _, ck := range b.Client.Jar.Cookies(u) {
			if strings.Contains(ck.Value, strings.Split(hint, ".")[1]) {
				t.Fatalf("cookie %s holds up's ID token", ck.Name)
			}
		}
	}
	// The callback is good once.
	if p := b.Get(callback); p.Status != http.StatusBadRequest || p.Location != nil {
		t.Fatalf("callback again = %d to %v, want 400", p.Status, p.Location)
	}

	// Confirmed on down's page, without hint or return address: the page
	// at the end says what ended.
	b = newBrowser(t)
	pr.signIn(b)
	p = b.Get(pr.down.issuer + "/oauth2/logout")
	p = b.SubmitForm(pr.down.issuer, p, `value="logout"`, url.Values{"decision": {"logout"}})
	pr.toUpstreamLogout(p)
	p = b.Follow(b.Follow(p))
	if p.Status != http.StatusOK || p.Location != nil || !strings.Contains(p.Body, "signed out of Signet and of Corp SSO") {
		t.Fatalf("signed-out page = %d:\n%s", p.Status, p.Body)
	}
	if !pr.upAsksPassword(b, "Corp SSO") {
		t.Fatal("up did not ask for the password again after the confirmed logout")
	}
}

// TestUpstreamLogout_NotDone: a provider whose logout is turned off
// (second: logout false), or whose discovery document has no
// end_session_endpoint, keeps its session, and down's signed-out page
// says so instead of claiming it ended; with a return address the app
// gets the browser back directly, as before.
func TestUpstreamLogout_NotDone(t *testing.T) {
	t.Run("logout false", func(t *testing.T) {
		pr := newPair(t, true)
		b := newBrowser(t)
		login, _ := pr.authorize(b)
		p := b.Follow(b.SubmitForm(pr.down.issuer, login, "Sign in with Second SSO", nil))
		p = b.SubmitForm(pr.up.issuer, p, `name="password"`, url.Values{"username": {"carol"}, "password": {carolPassword}})
		if p = b.Follow(p); p.Location == nil || !strings.HasPrefix(p.Location.String(), appRedirect+"?") {
			t.Fatalf("sign-in through second = %d:\n%s", p.Status, p.Body)
		}
		if rec := pr.sessionRecords(); len(rec) != 1 || bytes.Contains(rec[0], []byte("sealed_id_token")) || !bytes.Contains(rec[0], []byte(`"provider":"second"`)) {
			t.Fatalf("session kept %q: want the provider without its ID token", rec)
		}
		p = b.Get(pr.down.issuer + "/oauth2/logout")
		p = b.SubmitForm(pr.down.issuer, p, `value="logout"`, url.Values{"decision": {"logout"}})
		if p.Status != http.StatusOK || p.Location != nil || !strings.Contains(p.Body, "You are still signed in at Second SSO") {
			t.Fatalf("signed-out page = %d to %v:\n%s", p.Status, p.Location, p.Body)
		}
		if pr.upAsksPassword(b, "Second SSO") {
			t.Fatal("up asked for the password: its session was ended although logout is false")
		}
	})
	t.Run("no end_session_endpoint", func(t *testing.T) {
		pr := newPair(t, true)
		pr.up.setSwapPath("/.well-known/openid-configuration", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"end_session_endpoint"`), []byte(`"x_end_session_endpoint"`), 1)
		})
		b := newBrowser(t)
		pr.signIn(b)
		if rec := pr.sessionRecords(); len(rec) != 1 || bytes.Contains(rec[0], []byte("sealed_id_token")) {
			t.Fatalf("session kept %q: want no ID token for a provider without logout", rec)
		}
		p := pr.rpLogout(b, pr.lastIDToken, appBye)
		if p.Location == nil || p.Location.String() != appBye+"?state=rp-state" {
			t.Fatalf("logout = %d to %v, want straight back to the app", p.Status, p.Location)
		}
		if pr.upAsksPassword(b, "Corp SSO") {
			t.Fatal("up's session ended although it has no end_session_endpoint")
		}
	})
}

// TestUpstreamLogoutAttacks: the logout callback continues only a logout
// this browser started, once; a return address the app did not register
// is refused before anything ends.
func TestUpstreamLogoutAttacks(t *testing.T) {
	pr := newPair(t, true)
	cbBase := pr.down.issuer + "/login/upstream/corp/logout/callback"
	// toCallback logs b out at down and returns up's redirect to down's
	// logout callback, not followed.
	toCallback := func(b *browser) string {
		t.Helper()
		pr.signIn(b)
		p := pr.rpLogout(b, pr.lastIDToken, appBye)
		pr.toUpstreamLogout(p)
		p = b.Follow(p)
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), cbBase+"?") {
			t.Fatalf("up's logout = %d:\n%s", p.Status, p.Body)
		}
		return p.Location.String()
	}
	rows := []struct {
		name   string
		status int
		run    func(t *testing.T) page
	}{
		{"forged state", http.StatusBadRequest, func(t *testing.T) page {
			return newBrowser(t).Get(cbBase + "?state=forged.state")
		}},
		{"no state", http.StatusBadRequest, func(t *testing.T) page {
			return newBrowser(t).Get(cbBase)
		}},
		{"state with another MAC", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			u, _ := url.Parse(toCallback(b))
			st := u.Query().Get("state")
			body, _, _ := strings.Cut(st, ".")
			return b.Get(cbBase + "?" + url.Values{"state": {body + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}.Encode())
		}},
		{"replayed state", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			cb := toCallback(b)
			if p := b.Get(cb); p.Location == nil {
				t.Fatalf("first visit = %d:\n%s", p.Status, p.Body)
			}
			return b.Get(cb)
		}},
		{"another browser's state", http.StatusForbidden, func(t *testing.T) page {
			cb := toCallback(newBrowser(t))
			victim := newBrowser(t)
			pr.authorize(victim) // the victim has its own browser cookie
			return victim.Get(cb)
		}},
		{"a sign-in's state", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			login, _ := pr.authorize(b)
			p := b.SubmitForm(pr.down.issuer, login, "Sign in with Corp SSO", nil)
			return b.Get(cbBase + "?" + url.Values{"state": {p.Location.Query().Get("state")}}.Encode())
		}},
		{"another provider's logout callback", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			return b.Get(strings.Replace(toCallback(b), "/login/upstream/corp/", "/login/upstream/second/", 1))
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			p := r.run(t)
			if p.Status != r.status || p.Location != nil {
				t.Fatalf("status = %d to %v, want %d and no redirect:\n%s", p.Status, p.Location, r.status, p.Body)
			}
		})
	}

	t.Run("unregistered post_logout_redirect_uri", func(t *testing.T) {
		b := newBrowser(t)
		pr.signIn(b)
		p := pr.rpLogout(b, pr.lastIDToken, "https://evil.example/bye")
		if p.Status != http.StatusBadRequest || p.Location != nil {
			t.Fatalf("logout to an unregistered address = %d to %v, want 400", p.Status, p.Location)
		}
		// Nothing ended: down signs the app in again without up.
		q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {appRedirect}, "scope": {"openid"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
		if p := b.Get(pr.down.issuer + "/oauth2/authorize?" + q.Encode()); p.Location == nil || !strings.HasPrefix(p.Location.String(), appRedirect+"?") {
			t.Fatalf("down's session ended by a refused logout: authorize = %d:\n%s", p.Status, p.Body)
		}
	})
}
