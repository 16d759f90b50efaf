package login_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/users"
)

// pageOptions decodes the publicKey options of the page's passkey form.
func pageOptions(t testing.TB, p page) map[string]any {
	t.Helper()
	m := optionsRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no passkey form on the page (%d):\n%s", p.Status, p.Body)
	}
	var o struct {
		PublicKey map[string]any `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &o); err != nil {
		t.Fatal(err)
	}
	return o.PublicKey
}

// passkeyPost answers the passkey form of a sign-in page with cred.
func (b *browser) passkeyPost(form url.Values, cred string) page {
	v := url.Values{}
	for k, vs := range form {
		v[k] = vs
	}
	v.Set("credential", cred)
	return b.Post(b.e.issuer+"/login/passkey", v)
}

// isRefused reports a sign-in page shown again with the passkey refusal,
// no session and nothing sent to the client.
func isRefused(b *browser, p page) bool {
	u, _ := url.Parse(b.e.issuer)
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == login.SessionCookie {
			return false
		}
	}
	return p.Status == http.StatusUnauthorized && p.Location == nil && strings.Contains(p.Body, "This passkey was not accepted") &&
		strings.Contains(p.Body, `id="password"`) && strings.Contains(p.Body, `id="sign-in-passkey"`)
}

// TestPasskeySignIn_Attacks: a passkey added on the account page signs in
// alone from the sign-in page's button (discoverable credential, user
// verification); the ID token says swk, user, mfa and the MFA acr. The
// rows are the attacks, each refused with the sign-in page (never a 500):
// an assertion for another origin or RP ID, alice's user handle with
// bob's passkey, an assertion without user verification, one made for
// another sign-in page's challenge, an unknown passkey or user, a replay
// on the same page and on another, an expired page, a disabled user's
// passkey. A sign-in
// that asks again (prompt=login, max_age=0) shows the page again.
func TestPasskeySignIn_Attacks(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true})
	secret := e.webClient("web", nil)
	origin := e.issuer
	ctx := context.Background()
	bob, err := e.srv.Users().Create(ctx, users.NewUser{Username: "bob", Password: alicePassword})
	if err != nil {
		t.Fatal(err)
	}
	// Enrolment asks for a discoverable passkey and records what was made.
	ba := e.browser()
	e.flow(ba, "web", secret, nil)
	acct := ba.Get(e.issuer + "/account")
	reg := pageOptions(t, acct)
	sel, _ := reg["authenticatorSelection"].(map[string]any)
	ext, _ := reg["extensions"].(map[string]any)
	if sel["residentKey"] != "required" || sel["requireResidentKey"] != true || ext["credProps"] != true {
		t.Fatalf("registration options: authenticatorSelection %v, extensions %v", sel, ext)
	}
	alice := newSoftKey(t, origin, "localhost")
	if p := ba.addPasskeyOn(acct, alice, "laptop"); p.Status != http.StatusSeeOther {
		t.Fatalf("add passkey = %d:\n%s", p.Status, p.Body)
	}
	bb := e.browser()
	q, _ := factorQuery("web", nil)
	bb.login(bb.Authorize(q), "bob", alicePassword)
	bobKey := newSoftKey(t, origin, "localhost")
	if p := bb.addPasskey(bobKey, "bob's key"); p.Status != http.StatusSeeOther {
		t.Fatalf("bob's passkey = %d", p.Status)
	}

	b := e.browser()
	q, verifier := factorQuery("web", nil)
	lp := b.Authorize(q)
	if !strings.Contains(lp.Body, `id="sign-in-passkey"`) || !strings.Contains(lp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("sign-in page without the passkey button (CSP %q):\n%s", lp.Header.Get("Content-Security-Policy"), lp.Body)
	}
	if o := pageOptions(t, lp); o["userVerification"] != "required" || o["allowCredentials"] != nil {
		t.Fatalf("sign-in options: %v", o)
	}
	ch := pageChallenge(t, lp)
	_, form := passkeyForm(t, lp)
	other := b.Authorize(q) // another sign-in page: another transaction
	for _, row := range []struct {
		name string
		cred string
	}{
		{"assertion for another origin", (&softKey{key: alice.key, id: alice.id, origin: "https://evil.example", rpID: "localhost", count: 10}).get(t, ch, e.alice.ID)},
		{"assertion for another RP ID", (&softKey{key: alice.key, id: alice.id, origin: origin, rpID: "evil.example", count: 20}).get(t, ch, e.alice.ID)},
		{"alice's user handle with bob's passkey", bobKey.get(t, ch, e.alice.ID)},
		{"no user verification", (&softKey{key: alice.key, id: alice.id, origin: origin, rpID: "localhost", count: 30, noUV: true}).get(t, ch, e.alice.ID)},
		{"another sign-in page's challenge", (&softKey{key: alice.key, id: alice.id, origin: origin, rpID: "localhost", count: 40}).get(t, pageChallenge(t, other), e.alice.ID)},
		{"an unknown passkey", newSoftKey(t, origin, "localhost").get(t, ch, e.alice.ID)},
		{"an unknown user", newSoftKey(t, origin, "localhost").get(t, ch, "no-such-user")},
		{"not an assertion", `{"id":"x"}`},
	} {
		if p := b.passkeyPost(form, row.cred); !isRefused(b, p) {
			t.Errorf("%s = %d %v:\n%s", row.name, p.Status, p.Location, p.Body)
		}
	}
	// The button without script sends no assertion: the page again.
	if p := b.passkeyPost(form, ""); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "did not answer with a passkey") {
		t.Fatalf("no assertion = %d:\n%s", p.Status, p.Body)
	}

	good := alice.get(t, ch, e.alice.ID)
	signedIn := b.passkeyPost(form, good)
	c := e.idClaims(signedIn, "web", secret, verifier)
	if c["sub"] != e.alice.ID || c["acr"] != sessions.ACRMFA || !slices.Equal(amrOf(c), []string{"swk", "user", "mfa"}) {
		t.Fatalf("passkey sign-in: sub %v acr %v amr %v", c["sub"], c["acr"], c["amr"])
	}
	// Replays: the same page is used up; another page has another challenge.
	if p := b.passkeyPost(form, good); p.Status != http.StatusBadRequest || p.Location != nil || !strings.Contains(p.Body, "expired") {
		t.Fatalf("assertion replayed on its page = %d %v", p.Status, p.Location)
	}
	b2 := e.browser()
	_, form2 := passkeyForm(t, b2.Authorize(q))
	if p := b2.passkeyPost(form2, good); !isRefused(b2, p) {
		t.Fatalf("assertion replayed on another page = %d %v", p.Status, p.Location)
	}
	// A session of the passkey's two factors needs no step-up for a
	// request that asks for MFA, and asks again when told to.
	q2, _ := factorQuery("web", url.Values{"acr_values": {sessions.ACRMFA}})
	codeFrom(t, b.Authorize(q2))
	for _, extra := range []url.Values{{"prompt": {"login"}}, {"max_age": {"0"}}} {
		e.clock.Add(time.Minute)
		q3, v3 := factorQuery("web", extra)
		again := b.Authorize(q3)
		if again.Status != http.StatusOK || again.Location != nil || !strings.Contains(again.Body, `id="sign-in-passkey"`) {
			t.Fatalf("%v after a passkey sign-in = %d %v", extra, again.Status, again.Location)
		}
		_, f := passkeyForm(t, again)
		c := e.idClaims(b.passkeyPost(f, alice.get(t, pageChallenge(t, again), e.alice.ID)), "web", secret, v3)
		if at, _ := c["auth_time"].(float64); int64(at) != e.clock.Now().Unix() {
			t.Fatalf("%v: auth_time %v, want %d", extra, c["auth_time"], e.clock.Now().Unix())
		}
	}

	// An assertion for a page older than the transaction's lifetime.
	b4 := e.browser()
	lp4 := b4.Authorize(q)
	_, form4 := passkeyForm(t, lp4)
	late := alice.get(t, pageChallenge(t, lp4), e.alice.ID)
	e.clock.Add(sessions.DefaultTransactionTTL + time.Second)
	if p := b4.passkeyPost(form4, late); p.Status != http.StatusBadRequest || p.Location != nil || !strings.Contains(p.Body, "This page has expired") {
		t.Fatalf("assertion for an expired page = %d %v", p.Status, p.Location)
	}

	// A disabled user's passkey: refused, and the page says so.
	disabled := true
	if _, _, err := e.srv.Users().Update(ctx, bob.ID, users.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	b3 := e.browser()
	lp3 := b3.Authorize(q)
	_, form3 := passkeyForm(t, lp3)
	if p := b3.passkeyPost(form3, bobKey.get(t, pageChallenge(t, lp3), bob.ID)); p.Status != http.StatusForbidden || p.Location != nil || !strings.Contains(p.Body, "disabled") {
		t.Fatalf("disabled user's passkey = %d %v:\n%s", p.Status, p.Location, p.Body)
	}
}

// TestPasskeySignIn_SharesPasswordLimits: failed passkey sign-ins count
// with failed passwords (ratelimit.LoginLimiter through the authority):
// after them the password form is locked out too, and the reverse.
func TestPasskeySignIn_SharesPasswordLimits(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true, login: authority.LoginRateLimit{PerUserIP: 2, PerIP: 100, PerUser: 100, Window: time.Minute}})
	secret := e.webClient("web", nil)
	ba := e.browser()
	e.flow(ba, "web", secret, nil)
	alice := newSoftKey(t, e.issuer, "localhost")
	if p := ba.addPasskey(alice, "laptop"); p.Status != http.StatusSeeOther {
		t.Fatalf("add passkey = %d", p.Status)
	}
	noUV := &softKey{key: alice.key, id: alice.id, origin: e.issuer, rpID: "localhost", noUV: true}
	b := e.browser()
	q, _ := factorQuery("web", nil)
	for i := range 2 {
		lp := b.Authorize(q)
		_, f := passkeyForm(t, lp)
		if p := b.passkeyPost(f, noUV.get(t, pageChallenge(t, lp), e.alice.ID)); p.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d", i, p.Status)
		}
	}
	if p := b.login(b.Authorize(q), "alice", alicePassword); p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" {
		t.Fatalf("password after two failed passkey sign-ins = %d", p.Status)
	}
	lp := b.Authorize(q)
	_, f := passkeyForm(t, lp)
	if p := b.passkeyPost(f, alice.get(t, pageChallenge(t, lp), e.alice.ID)); p.Status != http.StatusTooManyRequests {
		t.Fatalf("good passkey while locked out = %d", p.Status)
	}
	e.clock.Add(time.Minute)
	for range 2 {
		if p := b.login(b.Authorize(q), "alice", "wrong"); p.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password = %d", p.Status)
		}
	}
	lp = b.Authorize(q)
	_, f = passkeyForm(t, lp)
	if p := b.passkeyPost(f, alice.get(t, pageChallenge(t, lp), e.alice.ID)); p.Status != http.StatusTooManyRequests {
		t.Fatalf("passkey after two wrong passwords = %d", p.Status)
	}
}

// TestPasskeySignIn_NoPasswordDeployment: with password_login false (an
// upstream-only deployment) the sign-in page still offers the passkey, and
// so does the account page's sign-in.
func TestPasskeySignIn_NoPasswordDeployment(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true, noPassword: true})
	secret := e.webClient("web", nil)
	k := newSoftKey(t, e.issuer, "localhost")
	// Added as the account page would have (it needs a signed-in session,
	// which this deployment gets from an upstream provider).
	if err := e.mfa.AddPasskey(context.Background(), e.alice.ID, "laptop", webauthn.Credential{ID: k.id, PublicKey: k.coseKey(t), AttestationType: "none",
		Flags: webauthn.CredentialFlags{UserPresent: true, UserVerified: true}}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	q, verifier := factorQuery("web", nil)
	lp := b.Authorize(q)
	if strings.Contains(lp.Body, `id="password"`) || !strings.Contains(lp.Body, `id="sign-in-passkey"`) {
		t.Fatalf("upstream-only sign-in page:\n%s", lp.Body)
	}
	_, f := passkeyForm(t, lp)
	c := e.idClaims(b.passkeyPost(f, k.get(t, pageChallenge(t, lp), e.alice.ID)), "web", secret, verifier)
	if !slices.Equal(amrOf(c), []string{"swk", "user", "mfa"}) {
		t.Fatalf("amr %v", c["amr"])
	}
	// The account page's own sign-in: the passkey, and no password (shown
	// or accepted: the form's POST with alice's password is refused).
	b2 := e.browser()
	ap := b2.Get(e.issuer + "/account")
	if strings.Contains(ap.Body, `id="password"`) {
		t.Fatalf("upstream-only account sign-in shows a password form:\n%s", ap.Body)
	}
	_, f = passkeyForm(t, ap)
	pw := url.Values{"tx": f["tx"], "csrf": f["csrf"], "kind": {"account_login"}, "username": {"alice"}, "password": {alicePassword}}
	if p := b2.Post(e.issuer+"/account/login", pw); p.Status != http.StatusForbidden || p.Location != nil {
		t.Fatalf("account sign-in with a password in an upstream-only deployment = %d %v", p.Status, p.Location)
	}
	ap = b2.Get(e.issuer + "/account")
	_, f = passkeyForm(t, ap)
	if f.Get("kind") != "account_login" {
		t.Fatalf("account sign-in form kind %q", f.Get("kind"))
	}
	if p := b2.passkeyPost(f, k.get(t, pageChallenge(t, ap), e.alice.ID)); p.Status != http.StatusSeeOther || p.Location.Path != "/account" {
		t.Fatalf("account passkey sign-in = %d %v:\n%s", p.Status, p.Location, p.Body)
	}
	if p := b2.Get(e.issuer + "/account"); !strings.Contains(p.Body, "laptop (added") || strings.Contains(p.Body, `id="factors-locked"`) {
		t.Fatalf("account page after a passkey sign-in:\n%s", p.Body)
	}
}

// TestPasskeySignIn_Off: login.passkeys.passwordless false keeps passkeys
// a second factor: no button, no script allowed, no route.
func TestPasskeySignIn_Off(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true, secondFactorOnly: true})
	e.webClient("web", nil)
	b := e.browser()
	q, _ := factorQuery("web", nil)
	lp := b.Authorize(q)
	if lp.Status != http.StatusOK || strings.Contains(lp.Body, "sign-in-passkey") || strings.Contains(lp.Header.Get("Content-Security-Policy"), "script-src") {
		t.Fatalf("sign-in page with passkeys a second factor only (%d, CSP %q):\n%s", lp.Status, lp.Header.Get("Content-Security-Policy"), lp.Body)
	}
	_, f := signettest.FormOf(t, lp)
	if p := b.passkeyPost(f, `{"id":"x"}`); p.Status != http.StatusNotFound && p.Status != http.StatusMethodNotAllowed {
		t.Fatalf("POST /login/passkey = %d", p.Status)
	}
}

// TestPasskeySignIn_Replicas: two replicas on one etcd cluster answer the
// requests in turn, so the sign-in page comes from one and its assertion
// goes to the other; the same assertion sent to both at once signs in
// exactly once.
func TestPasskeySignIn_Replicas(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{})
	e := newEnv(t, envOptions{factors: true, localhost: true, replicas: true, wrap: func(storage.Store) storage.Store {
		st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: cluster.Endpoints(), Prefix: "/login-test/"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}})
	secret := e.webClient("web", nil)
	ba := e.browser()
	e.flow(ba, "web", secret, nil)
	k := newSoftKey(t, e.issuer, "localhost")
	if p := ba.addPasskey(k, "laptop"); p.Status != http.StatusSeeOther {
		t.Fatalf("add passkey = %d:\n%s", p.Status, p.Body)
	}
	for round := range 3 {
		b := e.browser()
		q, verifier := factorQuery("web", nil)
		lp := b.Authorize(q)
		_, form := passkeyForm(t, lp)
		form.Set("credential", k.get(t, pageChallenge(t, lp), e.alice.ID))
		pages := make([]page, 2)
		var wg sync.WaitGroup
		for i := range pages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, e.issuer+"/login/passkey", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := b.Client.Do(req)
				if err != nil {
					pages[i] = page{Status: -1, Body: err.Error()}
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				pages[i] = page{Status: resp.StatusCode, Body: string(body)}
				pages[i].Location = signettest.ContinueLink(pages[i].Body)
			}()
		}
		wg.Wait()
		var signedIn []page
		for _, p := range pages {
			switch {
			case p.Location != nil && p.Location.Query().Get("code") != "":
				signedIn = append(signedIn, p)
			case p.Status == http.StatusBadRequest && strings.Contains(p.Body, "This page has expired"): // the other was first
			case p.Status == http.StatusUnauthorized: // the other had recorded the assertion's counter first
			default:
				t.Fatalf("round %d: %d %v:\n%s", round, p.Status, p.Location, p.Body)
			}
		}
		if len(signedIn) != 1 {
			t.Fatalf("round %d: the same assertion signed in %d times", round, len(signedIn))
		}
		if c := e.idClaims(signedIn[0], "web", secret, verifier); !slices.Equal(amrOf(c), []string{"swk", "user", "mfa"}) {
			t.Fatalf("round %d: amr %v", round, c["amr"])
		}
	}
}
