package upstream_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/signet-auth/signet/internal/signettest"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
)

// deviceClient registers a public first-party client with the device
// grant at s, as a command-line tool would have.
func (s *signet) deviceClient(id string, mod func(*clients.Client)) {
	s.t.Helper()
	cl := clients.Client{ID: id, ClientName: "Terminal Tool", GrantTypes: []string{clients.GrantDeviceCode, clients.GrantRefreshToken},
		Scopes: []string{"openid", "profile", "email", "offline_access"}, DefaultScopes: []string{"openid"}, Audiences: []string{"api"},
		Public: true, AuthMethods: []string{clients.AuthNone}, FirstParty: true}
	if mod != nil {
		mod(&cl)
	}
	if _, _, err := s.srv.Clients().Create(context.Background(), cl); err != nil {
		s.t.Fatal(err)
	}
}

// publicPost posts form to s's path as public client id (client_id in
// the body) and decodes the JSON answer.
func (s *signet) publicPost(path, id string, form url.Values) (int, map[string]any) {
	s.t.Helper()
	form.Set("client_id", id)
	resp, err := http.PostForm(s.issuer+path, form)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// startDevice starts a device authorization of client id at s; it
// returns the device code and the user code.
func (s *signet) startDevice(id string) (string, string) {
	s.t.Helper()
	status, m := s.publicPost("/oauth2/device_authorization", id, url.Values{"scope": {"openid"}})
	dc, _ := m["device_code"].(string)
	uc, _ := m["user_code"].(string)
	if status != http.StatusOK || dc == "" || uc == "" {
		s.t.Fatalf("device authorization = %d %v", status, m)
	}
	return dc, uc
}

// poll asks s's token endpoint for the device code's tokens.
func (s *signet) poll(id, deviceCode string) (int, map[string]any) {
	s.t.Helper()
	return s.publicPost("/oauth2/token", id, url.Values{"grant_type": {clients.GrantDeviceCode}, "device_code": {deviceCode}})
}

// pending checks that the device code is still waiting for the user.
func (s *signet) pending(t *testing.T, id, deviceCode string) {
	t.Helper()
	if status, m := s.poll(id, deviceCode); status != http.StatusBadRequest || m["error"] != "authorization_pending" && m["error"] != "slow_down" {
		t.Fatalf("device poll = %d %v, want authorization_pending", status, m)
	}
}

// deviceSignIn types userCode on down's device page and returns its
// sign-in page, which must offer the provider and no password.
func (pr *pair) deviceSignIn(b *browser, userCode string) page {
	pr.t.Helper()
	p := b.Get(pr.down.issuer + authority.DevicePath)
	p = b.SubmitForm(pr.down.issuer, p, `name="user_code"`, url.Values{"user_code": {userCode}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Sign in with Corp SSO") || !strings.Contains(p.Body, "Terminal Tool") ||
		strings.Contains(p.Body, `name="password"`) {
		pr.t.Fatalf("device sign-in page = %d, want the provider's button and no password:\n%s", p.Status, p.Body)
	}
	return p
}

// accountSignIn opens down's account page without a session: its
// sign-in, which must offer the provider and no password.
func (pr *pair) accountSignIn(b *browser) page {
	pr.t.Helper()
	p := b.Get(pr.down.issuer + "/account")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Sign in with Corp SSO") || strings.Contains(p.Body, `name="password"`) {
		pr.t.Fatalf("account sign-in page = %d, want the provider's button and no password:\n%s", p.Status, p.Body)
	}
	return p
}

// TestUpstreamDeviceSignIn: in an upstream-only deployment (password
// login off) a terminal is logged in with the device flow by a browser
// without a Signet session: the device page's sign-in has no password
// form and refuses the password's POST (403), its "Sign in with Corp
// SSO" button goes through the provider and comes back to the device's
// confirmation for the same code, and the device then gets tokens for
// the user the provider identified. A client that requires a second
// factor is refused the provider's session that has none, as after a
// password.
func TestUpstreamDeviceSignIn(t *testing.T) {
	pr := newPair(t, false)
	pr.down.user("alice", "alice's password!", "alice@example.com", true)
	pr.down.deviceClient("tool", nil)
	deviceCode, userCode := pr.down.startDevice("tool")

	b := newBrowser(t)
	p := pr.deviceSignIn(b, userCode)
	form := url.Values{"username": {"alice"}, "password": {"alice's password!"}}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.Body, 3) {
		form.Set(m[1], m[2])
	}
	if r := b.Post(pr.down.issuer+authority.DevicePath+"/login", form); r.Status != http.StatusForbidden || r.Location != nil ||
		!strings.Contains(r.Body, "Password sign-in is off") {
		t.Fatalf("device password sign-in with password login off = %d %v:\n%s", r.Status, r.Location, r.Body)
	}
	pr.down.pending(t, "tool", deviceCode)

	cb := pr.toCallback(b, p)
	consent := b.Follow(cb)
	if consent.Status != http.StatusOK || !strings.Contains(consent.Body, `value="allow"`) || !strings.Contains(consent.Body, userCode) {
		t.Fatalf("callback of a device sign-in = %d, not the device's confirmation:\n%s", consent.Status, consent.Body)
	}
	pr.down.pending(t, "tool", deviceCode)
	done := b.SubmitForm(pr.down.issuer, consent, `value="allow"`, url.Values{"decision": {"allow"}})
	if done.Status != http.StatusOK || !strings.Contains(done.Body, "device-done") {
		t.Fatalf("device allow = %d:\n%s", done.Status, done.Body)
	}
	status, tr := pr.down.poll("tool", deviceCode)
	at, _ := tr["access_token"].(string)
	idt, _ := tr["id_token"].(string)
	if status != http.StatusOK || at == "" || idt == "" {
		t.Fatalf("device poll after the provider's sign-in = %d %v", status, tr)
	}
	c := signettest.Claims(t, idt)
	sub, _ := c["sub"].(string)
	u, err := pr.down.srv.Users().Get(context.Background(), sub)
	if err != nil || !strings.HasPrefix(u.Username, "corp-") || c["aud"] != "tool" {
		t.Fatalf("device ID token %v: not the user linked to the provider (%+v, %v)", c, u, err)
	}

	// The step-up rules of the device page apply: a client requiring a
	// second factor is not confirmed on the provider's word alone (the
	// user has none of Signet's).
	pr.down.deviceClient("strict", func(cl *clients.Client) { cl.RequireSecondFactor = true })
	strictCode, strictUser := pr.down.startDevice("strict")
	b2 := newBrowser(t)
	r := b2.Follow(pr.toCallback(b2, pr.deviceSignIn(b2, strictUser)))
	if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "needs you to sign in with a second factor") || strings.Contains(r.Body, `value="allow"`) {
		t.Fatalf("strict client after the provider's sign-in = %d:\n%s", r.Status, r.Body)
	}
	pr.down.pending(t, "strict", strictCode)
}

// TestUpstreamAccountSignIn: the account page's sign-in of an
// upstream-only deployment has the provider's button; after the
// provider's sign-in the browser is back on the account page, signed in.
func TestUpstreamAccountSignIn(t *testing.T) {
	pr := newPair(t, false)
	b := newBrowser(t)
	cb := pr.toCallback(b, pr.accountSignIn(b))
	r := b.Follow(cb)
	if r.Status != http.StatusSeeOther || r.Location == nil || r.Location.String() != pr.down.issuer+"/account" {
		t.Fatalf("callback of an account sign-in = %d to %v:\n%s", r.Status, r.Location, r.Body)
	}
	acct := b.Follow(r)
	if acct.Status != http.StatusOK || !strings.Contains(acct.Body, "<h1>Your account</h1>") || !strings.Contains(acct.Body, "corp-") ||
		strings.Contains(acct.Body, "Sign in with Corp SSO") {
		t.Fatalf("account page after the provider's sign-in = %d:\n%s", acct.Status, acct.Body)
	}
}

// tamperFrom rewrites the sign-in kind inside a flow's state (its MAC
// left as it was), as a browser would have to in order to turn one
// sign-in into another.
func tamperFrom(t *testing.T, state, from, to string) string {
	t.Helper()
	enc, sig, ok := strings.Cut(state, ".")
	body, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil || !strings.Contains(string(body), `"from":"`+from+`"`) {
		t.Fatalf("state %q does not carry the sign-in kind %s (%v)", state, from, err)
	}
	body = []byte(strings.Replace(string(body), `"from":"`+from+`"`, `"from":"`+to+`"`, 1))
	return base64.RawURLEncoding.EncodeToString(body) + "." + sig
}

// TestUpstreamSignInEverywhere_Attacks: each row is an attack on the
// provider's sign-in started from the device page or the account page;
// each is refused with a page (never a 500), nothing is sent on, and
// the victim's device code is still waiting. An account page's state
// continues to the account page only; a code answered in another
// browser while this one was at the provider ends in a page saying so,
// without a session.
func TestUpstreamSignInEverywhere_Attacks(t *testing.T) {
	pr := newPair(t, false)
	pr.down.deviceClient("tool", nil)
	deviceCode, userCode := pr.down.startDevice("tool")

	// A device sign-in completed, whose callback is then replayed.
	_, doneUser := pr.down.startDevice("tool")
	replayer := newBrowser(t)
	replayCB := pr.toCallback(replayer, pr.deviceSignIn(replayer, doneUser))
	if p := replayer.Follow(replayCB); !strings.Contains(p.Body, `value="allow"`) {
		t.Fatalf("device sign-in through the provider = %d:\n%s", p.Status, p.Body)
	}

	rows := []struct {
		name   string
		status int
		run    func(t *testing.T) page
	}{
		{"device-flow callback replayed in the same browser", http.StatusBadRequest, func(t *testing.T) page {
			return replayer.Follow(replayCB)
		}},
		{"device-flow callback replayed in another browser", http.StatusBadRequest, func(t *testing.T) page {
			return newBrowser(t).Follow(replayCB)
		}},
		{"another browser's device_login transaction posted to the button", http.StatusForbidden, func(t *testing.T) page {
			attacker := newBrowser(t)
			p := pr.deviceSignIn(attacker, userCode)
			victim := newBrowser(t)
			victim.Get(pr.down.issuer + authority.DevicePath) // the victim has its own browser cookie
			return victim.SubmitForm(pr.down.issuer, p, "Sign in with Corp SSO", nil)
		}},
		{"another browser's device-flow state and code (login CSRF)", http.StatusForbidden, func(t *testing.T) page {
			attacker := newBrowser(t)
			cb := pr.toCallback(attacker, pr.deviceSignIn(attacker, userCode))
			victim := newBrowser(t)
			victim.Get(pr.down.issuer + authority.DevicePath)
			return victim.Follow(cb)
		}},
		{"account state with its kind tampered to the device's", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			cb := pr.toCallback(b, pr.accountSignIn(b))
			u := *cb.Location
			q := u.Query()
			q.Set("state", tamperFrom(t, q.Get("state"), "account_login", "device_login"))
			u.RawQuery = q.Encode()
			return b.Get(u.String())
		}},
		{"account sign-in's form posted to the device page's password", http.StatusForbidden, func(t *testing.T) page {
			b := newBrowser(t)
			p := pr.accountSignIn(b)
			return postHidden(b, pr.down.issuer+authority.DevicePath+"/login", p)
		}},
		{"device sign-in's form posted to the account page's password", http.StatusForbidden, func(t *testing.T) page {
			b := newBrowser(t)
			p := pr.deviceSignIn(b, userCode)
			return postHidden(b, pr.down.issuer+"/account/login", p)
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			p := r.run(t)
			if p.Status != r.status || p.Location != nil || strings.Contains(p.Body, `value="allow"`) {
				t.Fatalf("status = %d (want %d), location %v:\n%s", p.Status, r.status, p.Location, p.Body)
			}
			pr.down.pending(t, "tool", deviceCode)
		})
	}

	// The account page's state, untampered, opens the account page and
	// never the device's confirmation: the kind it continues is the one
	// the flow started from.
	b := newBrowser(t)
	pr.deviceSignIn(b, userCode) // the browser has seen the victim's code
	r := b.Follow(pr.toCallback(b, pr.accountSignIn(b)))
	if r.Status != http.StatusSeeOther || r.Location == nil || r.Location.Path != "/account" {
		t.Fatalf("account state's callback = %d to %v:\n%s", r.Status, r.Location, r.Body)
	}
	pr.down.pending(t, "tool", deviceCode)

	// A code answered in another browser while this one was at the
	// provider: the callback says the code is gone and starts no session.
	_, raced := pr.down.startDevice("tool")
	slow := newBrowser(t)
	slowCB := pr.toCallback(slow, pr.deviceSignIn(slow, raced))
	fast := newBrowser(t)
	consent := fast.Follow(pr.toCallback(fast, pr.deviceSignIn(fast, raced)))
	if p := fast.SubmitForm(pr.down.issuer, consent, `value="allow"`, url.Values{"decision": {"allow"}}); !strings.Contains(p.Body, "device-done") {
		t.Fatalf("the other browser's allow = %d:\n%s", p.Status, p.Body)
	}
	if p := slow.Follow(slowCB); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "This code has expired") || p.Location != nil {
		t.Fatalf("callback for a code answered meanwhile = %d:\n%s", p.Status, p.Body)
	}
	if p := slow.Get(pr.down.issuer + "/account"); !strings.Contains(p.Body, "Sign in with Corp SSO") {
		t.Fatalf("the browser whose code was answered meanwhile got a session:\n%s", p.Body)
	}
}

// postHidden posts the hidden fields of page p (its transaction) to u
// with carol's username and password.
func postHidden(b *browser, u string, p page) page {
	v := url.Values{"username": {"carol"}, "password": {carolPassword}}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
		v.Set(m[1], m[2])
	}
	return b.Post(u, v)
}

// hiddenRE reads a form's hidden fields.
var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
