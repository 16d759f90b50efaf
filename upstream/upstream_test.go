package upstream_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/upstream"
	"github.com/signet-auth/signet/users"
)

const (
	carolPassword = "carol's long password"
	appRedirect   = "https://app.example/cb"
	appBye        = "https://app.example/bye"
)

// pair is a Signet (down) that signs in through another Signet (up): up
// has carol, whose email is the same as down's alice's, unverified.
type pair struct {
	t          testing.TB
	up, down   *signet
	corpSecret string
	appSecret  string
	callback   string
	carol      string // carol's id at up
	// lastIDToken is down's ID token of the last signIn (for the app).
	lastIDToken string
}

func newPair(t testing.TB, passwordLogin bool) *pair {
	pr := &pair{t: t}
	pr.up = newSignet(t, nil, true)
	pr.carol = pr.up.user("carol", carolPassword, "alice@example.com", false).ID
	pr.down = newSignet(t, func(issuer string) []upstream.Provider {
		pr.callback = issuer + "/login/upstream/corp/callback"
		// Both providers are one client at up; each has its callbacks.
		pr.corpSecret = pr.up.clientURIs("corp", []string{pr.callback, issuer + "/login/upstream/second/callback"},
			[]string{issuer + "/login/upstream/corp/logout/callback", issuer + "/login/upstream/second/logout/callback"})
		return []upstream.Provider{{ID: "corp", Name: "Corp SSO", Issuer: pr.up.issuer, ClientID: "corp", ClientSecret: pr.corpSecret,
			Scopes: []string{"openid", "email", "profile"}, Claims: map[string]string{upstream.FieldEmail: "email", upstream.FieldName: "name", upstream.FieldRoles: "preferred_username"}},
			{ID: "second", Name: "Second SSO", Issuer: pr.up.issuer, ClientID: "corp", ClientSecret: pr.corpSecret, Scopes: []string{"openid"}, NoLogout: true}}
	}, passwordLogin)
	pr.appSecret = pr.down.client("app", appRedirect, appBye)
	return pr
}

// authorize starts the app's authorization request at down.
func (pr *pair) authorize(b *browser) (page, string) {
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {appRedirect}, "scope": {"openid email"},
		"state": {"app-state"}, "nonce": {"app-nonce"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	p := b.Get(pr.down.issuer + "/oauth2/authorize?" + q.Encode())
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Sign in with Corp SSO") {
		pr.t.Fatalf("down's login page = %d without the button:\n%s", p.Status, p.Body)
	}
	return p, verifier
}

// toCallback clicks the button, signs in at up (unless b has a session
// there) and returns the page that sends the browser to down's callback.
func (pr *pair) toCallback(b *browser, login page) page {
	pr.t.Helper()
	p, _ := pr.toCallbackNonce(b, login)
	return p
}

// toCallbackNonce is toCallback that also returns the nonce down sent
// to up.
func (pr *pair) toCallbackNonce(b *browser, login page) (page, string) {
	pr.t.Helper()
	p := b.SubmitForm(pr.down.issuer, login, "Sign in with Corp SSO", nil)
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), pr.up.issuer+"/oauth2/authorize?") {
		pr.t.Fatalf("button = %d, not sent to the upstream:\n%s", p.Status, p.Body)
	}
	nonce := p.Location.Query().Get("nonce")
	// The state carries the app's request: it must fit the 2048 bytes a
	// provider such as Signet accepts (login.upstreams docs say so).
	if st := p.Location.Query().Get("state"); len(st) > 1024 {
		pr.t.Fatalf("state is %d bytes", len(st))
	}
	p = b.Follow(p)
	if p.Location == nil {
		p = b.SubmitForm(pr.up.issuer, p, `name="password"`, url.Values{"username": {"carol"}, "password": {carolPassword}})
	}
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), pr.callback+"?") {
		pr.t.Fatalf("upstream login = %d, not sent back to the callback:\n%s", p.Status, p.Body)
	}
	return p, nonce
}

// signIn runs a whole sign-in through up and returns the sub of down's
// ID token for the app and the callback URL the browser visited.
func (pr *pair) signIn(b *browser) (string, string) {
	pr.t.Helper()
	login, verifier := pr.authorize(b)
	cb := pr.toCallback(b, login)
	p := b.Follow(cb)
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), appRedirect+"?") || p.Location.Query().Get("code") == "" {
		pr.t.Fatalf("callback = %d, not sent to the app with a code:\n%s", p.Status, p.Body)
	}
	status, tr := pr.down.token("app", pr.appSecret, url.Values{"grant_type": {"authorization_code"}, "code": {p.Location.Query().Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {verifier}})
	if status != http.StatusOK {
		pr.t.Fatalf("redeem at down = %d %v", status, tr)
	}
	idt, _ := tr["id_token"].(string)
	c := signettest.Claims(pr.t, idt)
	if c["nonce"] != "app-nonce" || c["iss"] != pr.down.issuer {
		pr.t.Fatalf("down's ID token claims: %v", c)
	}
	pr.lastIDToken = idt
	sub, _ := c["sub"].(string)
	return sub, cb.Location.String()
}

func (pr *pair) userCount() int {
	pr.t.Helper()
	l, err := pr.down.srv.Users().List(context.Background())
	if err != nil {
		pr.t.Fatal(err)
	}
	return len(l)
}

// TestUpstreamSignIn: carol signs in to the app at down through up; a
// Signet user is created once and found again on the next sign-in, in
// another browser; down's alice, whose email is the same, is not taken
// over (linking is by issuer and subject only, never by email).
func TestUpstreamSignIn(t *testing.T) {
	pr := newPair(t, true)
	alice := pr.down.user("alice", "alice's password!", "alice@example.com", true)

	sub1, _ := pr.signIn(newBrowser(t))
	if sub1 == "" || sub1 == alice.ID {
		t.Fatalf("first sign-in's sub = %q (alice is %q): linked by email", sub1, alice.ID)
	}
	if n := pr.userCount(); n != 2 {
		t.Fatalf("users after the first sign-in = %d, want 2", n)
	}
	u, err := pr.down.srv.Users().Get(context.Background(), sub1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "alice@example.com" || u.EmailVerified || u.Name != "Name of carol" || !slices.Equal(u.Roles, []string{"carol"}) {
		t.Fatalf("created user %+v: want the mapped email (unverified, as upstream says) and name", u)
	}
	// The provider's word is taken again on the next sign-in.
	newEmail := "carol@corp.example"
	if _, _, err := pr.up.srv.Users().Update(context.Background(), pr.carol, users.Patch{Email: &newEmail}); err != nil {
		t.Fatal(err)
	}
	sub2, _ := pr.signIn(newBrowser(t))
	if sub2 != sub1 {
		t.Fatalf("second sign-in's sub = %q, want the same user %q", sub2, sub1)
	}
	if n := pr.userCount(); n != 2 {
		t.Fatalf("users after the second sign-in = %d, want 2 (found again, not created)", n)
	}
	if u, _ := pr.down.srv.Users().Get(context.Background(), sub1); u.Email != newEmail {
		t.Fatalf("email after the provider changed it = %q, want %q", u.Email, newEmail)
	}
	if a, _ := pr.down.srv.Users().Get(context.Background(), alice.ID); a.Email != "alice@example.com" || !a.EmailVerified || a.Name != "Name of alice" {
		t.Fatalf("alice changed: %+v", a)
	}
	// A disabled Signet user does not sign in through the provider either.
	disabled := true
	if _, _, err := pr.down.srv.Users().Update(context.Background(), sub1, users.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	login, _ := pr.authorize(b)
	if p := b.Follow(pr.toCallback(b, login)); p.Status != http.StatusForbidden || p.Location != nil {
		t.Fatalf("disabled user's sign-in = %d to %v, want 403", p.Status, p.Location)
	}
	if n := pr.userCount(); n != 2 {
		t.Fatalf("users after the disabled user's sign-in = %d, want 2", n)
	}
}

// realIDToken returns an ID token up really signed for client id, with
// nonce, for carol (a direct code flow at up).
func (pr *pair) realIDToken(id, secret, redirect, nonce string) string {
	pr.t.Helper()
	b := newBrowser(pr.t)
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect}, "scope": {"openid email"},
		"nonce": {nonce}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	p := b.Get(pr.up.issuer + "/oauth2/authorize?" + q.Encode())
	p = b.SubmitForm(pr.up.issuer, p, `name="password"`, url.Values{"username": {"carol"}, "password": {carolPassword}})
	if p.Location == nil {
		pr.t.Fatalf("direct flow at up = %d:\n%s", p.Status, p.Body)
	}
	status, tr := pr.up.token(id, secret, url.Values{"grant_type": {"authorization_code"}, "code": {p.Location.Query().Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifier}})
	idt, _ := tr["id_token"].(string)
	if status != http.StatusOK || idt == "" {
		pr.t.Fatalf("direct redeem at up = %d %v", status, tr)
	}
	return idt
}

// swapIDToken makes up's token endpoint answer with idt as id_token.
func (pr *pair) swapIDToken(idt string) {
	pr.up.setSwap(func(body []byte) []byte {
		i := bytes.Index(body, []byte(`"id_token":"`))
		if i < 0 {
			return body
		}
		j := bytes.IndexByte(body[i+12:], '"')
		return append(append(append([]byte{}, body[:i+12]...), idt...), body[i+12+j:]...)
	})
}

// TestUpstreamAttacks: each row is an attack on the callback; none signs
// anyone in or creates a user.
func TestUpstreamAttacks(t *testing.T) {
	pr := newPair(t, true)
	otherSecret := pr.up.client("other", "https://other.example/cb")
	_, replayURL := pr.signIn(newBrowser(t)) // carol's user exists from here on
	users := pr.userCount()

	rows := []struct {
		name   string
		status int
		run    func(t *testing.T) page
	}{
		{"ID token for another audience", http.StatusBadGateway, func(t *testing.T) page {
			// Signed by up, with this sign-in's nonce, but for client other.
			b := newBrowser(t)
			login, _ := pr.authorize(b)
			cb, nonce := pr.toCallbackNonce(b, login)
			pr.swapIDToken(pr.realIDToken("other", otherSecret, "https://other.example/cb", nonce))
			defer pr.up.setSwap(nil)
			return b.Follow(cb)
		}},
		{"ID token with another sign-in's nonce", http.StatusBadGateway, func(t *testing.T) page {
			pr.swapIDToken(pr.realIDToken("corp", pr.corpSecret, pr.callback, "not-this-sign-in"))
			defer pr.up.setSwap(nil)
			b := newBrowser(t)
			login, _ := pr.authorize(b)
			return b.Follow(pr.toCallback(b, login))
		}},
		{"replayed state (callback visited again)", http.StatusBadRequest, func(t *testing.T) page {
			return newBrowser(t).Get(replayURL)
		}},
		{"replayed state in the same browser", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			_, cb := pr.signIn(b)
			return b.Get(cb)
		}},
		{"answer naming another issuer (RFC 9207 mix-up)", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			login, _ := pr.authorize(b)
			u := *pr.toCallback(b, login).Location
			q := u.Query()
			if q.Get("iss") != pr.up.issuer {
				t.Fatalf("up's answer has iss %q", q.Get("iss"))
			}
			q.Set("iss", "https://evil.example")
			u.RawQuery = q.Encode()
			return b.Get(u.String())
		}},
		{"callback without a transaction", http.StatusBadRequest, func(t *testing.T) page {
			return newBrowser(t).Get(pr.callback + "?state=forged.state&code=x")
		}},
		{"callback without state", http.StatusBadRequest, func(t *testing.T) page {
			return newBrowser(t).Get(pr.callback + "?code=x")
		}},
		{"another browser's state and code (login CSRF)", http.StatusForbidden, func(t *testing.T) page {
			attacker := newBrowser(t)
			login, _ := pr.authorize(attacker)
			cb := pr.toCallback(attacker, login)
			victim := newBrowser(t)
			pr.authorize(victim) // the victim has its own browser cookie
			return victim.Get(cb.Location.String())
		}},
		{"state of another provider's flow", http.StatusBadRequest, func(t *testing.T) page {
			b := newBrowser(t)
			login, _ := pr.authorize(b)
			cb := pr.toCallback(b, login)
			return b.Get(strings.Replace(cb.Location.String(), "/login/upstream/corp/", "/login/upstream/second/", 1))
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			p := r.run(t)
			if p.Status != r.status {
				t.Fatalf("status = %d, want %d:\n%s", p.Status, r.status, p.Body)
			}
			if p.Location != nil {
				t.Fatalf("sent on to %s", p.Location)
			}
			if n := pr.userCount(); n != users {
				t.Fatalf("users = %d, want %d", n, users)
			}
		})
	}
}

// TestPasswordLoginOff: with password_login false the login page has no
// password form and the password endpoint refuses, while the button works.
func TestPasswordLoginOff(t *testing.T) {
	pr := newPair(t, false)
	pr.down.user("alice", "alice's password!", "alice@example.com", true)
	b := newBrowser(t)
	login, _ := pr.authorize(b)
	if strings.Contains(login.Body, `name="password"`) {
		t.Fatalf("password field shown:\n%s", login.Body)
	}
	form := url.Values{}
	hiddenRE := regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	for _, m := range hiddenRE.FindAllStringSubmatch(login.Body, 3) {
		form.Set(m[1], m[2])
	}
	form.Set("username", "alice")
	form.Set("password", "alice's password!")
	p := b.Post(pr.down.issuer+"/login/password", form)
	if p.Status != http.StatusForbidden || p.Location != nil {
		t.Fatalf("password login = %d, want 403:\n%s", p.Status, p.Body)
	}
	if sub, _ := pr.signIn(newBrowser(t)); sub == "" {
		t.Fatal("no sign-in through the provider")
	}
}

// BenchmarkUpstreamSignIn: one whole sign-in of a returning user through
// the provider, over loopback HTTP: down's login page, the button, up's
// login form (a cheap test hash), down's callback (discovery and keys
// cached, the code exchange, the ID token checks, the link lookup), the
// app's code redeemed.
func BenchmarkUpstreamSignIn(b *testing.B) {
	pr := newPair(b, true)
	pr.signIn(newBrowser(b))
	b.ResetTimer()
	for b.Loop() {
		pr.signIn(newBrowser(b))
	}
}
