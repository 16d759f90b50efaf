package login_test

import (
	"context"
	"encoding/base32"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/totp"
	"github.com/signet-auth/signet/users"
)

// formAt returns the form of p that posts to action, as a page of its own
// (for submit).
func formAt(t testing.TB, p page, action string) page {
	t.Helper()
	i := strings.Index(p.Body, `action="`+action+`"`)
	if i < 0 {
		t.Fatalf("no form posting to %s (status %d):\n%s", action, p.Status, p.Body)
	}
	start := strings.LastIndex(p.Body[:i], "<form")
	end := i + strings.Index(p.Body[i:], "</form>")
	return page{Status: p.Status, Body: p.Body[start:end]}
}

func isDuePage(p page) bool {
	return p.Status == http.StatusOK && strings.Contains(p.Body, `id="factor-due"`) && strings.Contains(p.Body, `action="/login/continue"`)
}

func isEnrolPage(p page) bool {
	return p.Status == http.StatusOK && strings.Contains(p.Body, `action="/login/enrol"`) && secretRE.MatchString(p.Body) && qrRE.MatchString(p.Body)
}

// enrolKey reads the key of an enrolment page.
func enrolKey(t testing.TB, p page) []byte {
	t.Helper()
	m := secretRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no key on the page (%d):\n%s", p.Status, p.Body)
	}
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(m[1], " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func hasSessionCookie(b *browser) bool {
	return slices.ContainsFunc(b.Client.Jar.Cookies(mustURL(b.e.issuer)), func(c *http.Cookie) bool { return c.Name == login.SessionCookie })
}

func (e *env) require(userID string, on bool) {
	e.t.Helper()
	if _, _, err := e.srv.Users().Update(context.Background(), userID, users.Patch{RequireSecondFactor: &on}); err != nil {
		e.t.Fatal(err)
	}
}

var allWeek = mfa.Policy{RequiredFor: mfa.RequiredForAll, Grace: 168 * time.Hour}

// TestRequirement_GraceReminder: during the grace period a user without a
// second factor is reminded after the password, with the date counted
// from the first sign-in under the requirement and a link to the account
// page, and goes on to the application with the password alone; the
// admins policy concerns only users with the admin role.
func TestRequirement_GraceReminder(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, policy: allWeek})
	secret := e.webClient("web", nil)
	b := e.browser()
	q, verifier := factorQuery("web", nil)
	due := b.login(b.Authorize(q), "alice", alicePassword)
	wantDue := e.clock.Now().Add(168 * time.Hour).UTC().Format("2 January 2006, 15:04 UTC")
	if !isDuePage(due) || due.Location != nil || !strings.Contains(due.Body, "You must set up a second factor by <strong>"+wantDue+"</strong>") ||
		!strings.Contains(due.Body, `href="/account"`) {
		t.Fatalf("password sign-in during the grace period = %d %v:\n%s", due.Status, due.Location, due.Body)
	}
	c := e.idClaims(b.Submit(due, nil), "web", secret, verifier)
	if c["acr"] != sessions.ACRPassword {
		t.Fatalf("continued sign-in: acr %v", c["acr"])
	}
	if p := b.Submit(due, nil); p.Status != http.StatusBadRequest || p.Location != nil {
		t.Fatalf("the reminder's form again = %d %v", p.Status, p.Location)
	}
	// A day later the date has not moved: it counts from the first time.
	e.clock.Add(24 * time.Hour)
	q, _ = factorQuery("web", url.Values{"prompt": {"login"}})
	if p := b.login(b.Authorize(q), "alice", alicePassword); !isDuePage(p) || !strings.Contains(p.Body, wantDue) {
		t.Fatalf("reminder a day later = %d:\n%s", p.Status, p.Body)
	}
	// The account page says so too.
	if p := b.Get(e.issuer + "/account"); !strings.Contains(p.Body, `id="factor-required"`) || !strings.Contains(p.Body, wantDue) {
		t.Fatalf("account page during the grace period:\n%s", p.Body)
	}

	t.Run("admins only", func(t *testing.T) {
		e := newEnv(t, envOptions{factors: true, policy: mfa.Policy{RequiredFor: mfa.RequiredForAdmins, Grace: time.Hour}})
		secret := e.webClient("web", nil)
		e.flow(e.browser(), "web", secret, nil) // not an admin: straight to the code
		roles := []string{authority.AdminScope}
		if _, _, err := e.srv.Users().Update(context.Background(), e.alice.ID, users.Patch{Roles: &roles}); err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		q, _ := factorQuery("web", nil)
		if p := b.login(b.Authorize(q), "alice", alicePassword); !isDuePage(p) {
			t.Fatalf("admin's sign-in = %d %v", p.Status, p.Location)
		}
	})
}

// TestRequirement_EnrolAfterGrace: after the grace period a user without a
// second factor is sent from the password to setting up an authenticator
// app; nothing is issued and no session starts until its first code is
// confirmed, which then counts as the sign-in's second factor. The rows
// are the ways around it.
func TestRequirement_EnrolAfterGrace(t *testing.T) {
	// The grace period is shorter than the env's session idle time (1h)
	// and than a login transaction's life (15m).
	e := newEnv(t, envOptions{factors: true, policy: mfa.Policy{RequiredFor: mfa.RequiredForAll, Grace: 10 * time.Minute}})
	secret := e.webClient("web", nil)
	e.webClient("third", func(c *clients.Client) { c.FirstParty = false })
	old := e.browser()
	q, verifier := factorQuery("web", nil)
	codeFrom(t, old.Submit(old.login(old.Authorize(q), "alice", alicePassword), nil)) // during the grace period
	q3, _ := factorQuery("third", nil)
	consent := old.Authorize(q3) // a consent page shown during the grace period
	if !strings.Contains(consent.Body, `action="/login/consent"`) {
		t.Fatalf("third-party client during the grace period = %d:\n%s", consent.Status, consent.Body)
	}
	e.clock.Add(12 * time.Minute)

	b := e.browser()
	enrol := b.login(b.Authorize(q), "alice", alicePassword)
	if !isEnrolPage(enrol) || enrol.Location != nil || !strings.Contains(enrol.Body, "the time to set one up has passed") {
		t.Fatalf("password sign-in after the grace period = %d %v:\n%s", enrol.Status, enrol.Location, enrol.Body)
	}
	if hasSessionCookie(b) {
		t.Fatal("a session cookie was set before the enrolment")
	}
	_, enrolForm := signettest.FormOf(t, enrol)
	for _, row := range []struct {
		name string
		do   func() page
		ok   func(page) bool
	}{
		{"the authorization request again, prompt=none", func() page {
			q, _ := factorQuery("web", url.Values{"prompt": {"none"}})
			return b.Authorize(q)
		}, func(p page) bool { return p.Location != nil && p.Location.Query().Get("error") == "login_required" }},
		{"the authorization request again", func() page { return b.Authorize(q) },
			func(p page) bool { return p.Location == nil && strings.Contains(p.Body, `name="password"`) }},
		{"the enrolment's transaction on the continue form", func() page { return b.Post(e.issuer+"/login/continue", enrolForm) },
			func(p page) bool { return p.Status == http.StatusForbidden && p.Location == nil }},
		{"the enrolment's transaction on the consent form", func() page {
			f := url.Values{"decision": {"allow"}}
			for k, v := range enrolForm {
				f[k] = v
			}
			return b.Post(e.issuer+"/login/consent", f)
		}, func(p page) bool { return p.Status == http.StatusForbidden && p.Location == nil }},
		{"the enrolment's transaction on the code form", func() page {
			f := url.Values{"kind": {"otp"}, "code": {"123456"}}
			for k, v := range enrolForm {
				f[k] = v
			}
			return b.Post(e.issuer+"/login/otp", f)
		}, func(p page) bool { return p.Status == http.StatusForbidden && p.Location == nil }},
		{"the password session of the grace period, prompt=none", func() page {
			q, _ := factorQuery("web", url.Values{"prompt": {"none"}})
			return old.Authorize(q)
		}, func(p page) bool {
			return p.Location != nil && p.Location.Query().Get("code") == "" && p.Location.Query().Get("error") == "interaction_required"
		}},
		{"the password session of the grace period, its consent page answered after it", func() page {
			return old.Submit(consent, url.Values{"decision": {"allow"}})
		}, func(p page) bool {
			return p.Location != nil && p.Location.Query().Get("code") == "" && p.Location.Query().Get("error") == "unmet_authentication_requirements"
		}},
		{"a wrong first code", func() page { return b.Submit(enrol, url.Values{"code": {"000000"}}) },
			func(p page) bool {
				return p.Status == http.StatusUnauthorized && p.Location == nil && isEnrolPage(page{Status: 200, Body: p.Body})
			}},
	} {
		if p := row.do(); !row.ok(p) {
			t.Errorf("%s = %d %v:\n%s", row.name, p.Status, p.Location, p.Body)
		}
	}
	if hasSessionCookie(b) {
		t.Fatal("a session cookie was set before the enrolment")
	}
	key := enrolKey(t, enrol)
	done := b.Submit(enrol, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})
	if done.Status != http.StatusOK || len(recoveryRE.FindAllString(done.Body, -1)) != 10 || done.Location != nil {
		t.Fatalf("confirmed enrolment = %d %v:\n%s", done.Status, done.Location, done.Body)
	}
	if p := b.Submit(enrol, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}}); p.Location != nil || p.Status == http.StatusOK {
		t.Fatalf("the enrolment form again = %d %v", p.Status, p.Location)
	}
	c := e.idClaims(b.Submit(done, nil), "web", secret, verifier)
	if c["acr"] != sessions.ACRMFA || !slices.Equal(amrOf(c), []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("sign-in with the enrolment: acr %v amr %v", c["acr"], c["amr"])
	}
	// The user has a factor now: the grace period's password session is
	// asked for it, and the next sign-in too.
	if p := old.Authorize(q); !isOTPPage(p) {
		t.Fatalf("password session after the enrolment = %d %v", p.Status, p.Location)
	}
	e.clock.Add(totp.Period)
	b2 := e.browser()
	if p := b2.login(b2.Authorize(q), "alice", alicePassword); !isOTPPage(p) {
		t.Fatalf("sign-in after the enrolment = %d %v", p.Status, p.Location)
	}
}

// TestRequirement_EnrolStepsUpSession: a password session from before the
// end of the grace period is sent to set up an app by the next request;
// the enrolment replaces the session, and its old cookie, replayed, finds
// nothing.
func TestRequirement_EnrolStepsUpSession(t *testing.T) {
	e := newEnv(t, envOptions{factors: true})
	secret := e.webClient("web", nil)
	b := e.browser()
	e.flow(b, "web", secret, nil)
	pwdCookies := b.Client.Jar.Cookies(mustURL(e.issuer))
	e.require(e.alice.ID, true) // no grace (the env's policy has none)
	q, verifier := factorQuery("web", nil)
	enrol := b.Authorize(q)
	if !isEnrolPage(enrol) {
		t.Fatalf("password session after the requirement = %d %v:\n%s", enrol.Status, enrol.Location, enrol.Body)
	}
	done := b.Submit(enrol, url.Values{"code": {totp.Code(enrolKey(t, enrol), totp.Step(e.clock.Now()))}})
	c := e.idClaims(b.Submit(done, nil), "web", secret, verifier)
	if c["acr"] != sessions.ACRMFA {
		t.Fatalf("after the enrolment: acr %v", c["acr"])
	}
	jar, _ := cookiejar.New(nil)
	jar.SetCookies(mustURL(e.issuer), pwdCookies)
	replay := &browser{e: e, Browser: &signettest.Browser{T: e.t, Base: e.issuer, Client: &http.Client{Jar: jar, Transport: b.Client.Transport, CheckRedirect: b.Client.CheckRedirect}}}
	q, _ = factorQuery("web", url.Values{"prompt": {"none"}})
	if p := replay.Authorize(q); p.Location == nil || p.Location.Query().Get("error") != "login_required" {
		t.Fatalf("the replaced session's cookie = %d %v", p.Status, p.Location)
	}
}

// TestRequirement_PasswordGrant: the password grant, which cannot ask for
// a second factor, gives tokens to a required user without one during the
// grace period and refuses them after it (RFC 6749 invalid_grant), for
// the configured policy as for the operator's requirement.
func TestRequirement_PasswordGrant(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, policy: mfa.Policy{RequiredFor: mfa.RequiredForAll, Grace: time.Hour}})
	secret := e.webClient("cli", func(c *clients.Client) {
		c.GrantTypes, c.RedirectURIs, c.PostLogoutRedirectURIs = []string{clients.GrantPassword}, nil, nil
	})
	grant := func() tokenResponse {
		return e.token("cli", secret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "scope": {"read"}})
	}
	if r := grant(); r.status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("password grant during the grace period = %d %s", r.status, r.raw)
	}
	e.clock.Add(time.Hour)
	r := grant()
	if r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" || r.str("access_token") != "" ||
		!strings.Contains(r.str("error_description"), e.issuer+"/account") || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("password grant after the grace period = %d %s", r.status, r.raw)
	}

	e2 := newEnv(t, envOptions{factors: true})
	secret = e2.webClient("cli", func(c *clients.Client) {
		c.GrantTypes, c.RedirectURIs, c.PostLogoutRedirectURIs = []string{clients.GrantPassword}, nil, nil
	})
	e2.require(e2.alice.ID, true) // the env's policy has no grace
	r = e2.token("cli", secret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "scope": {"read"}})
	if r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Fatalf("password grant, operator's requirement = %d %s", r.status, r.raw)
	}
}

// TestAccount_RemoveTOTP: a user removes their authenticator app and gets
// new recovery codes on the account page; both need a second factor from
// the last ten minutes, asked again when older.
func TestAccount_RemoveTOTP(t *testing.T) {
	e := newEnv(t, envOptions{factors: true})
	secret := e.webClient("web", nil)
	key, old := e.enrolTOTP(e.browser(), "web", secret)
	b := e.browser()
	q, _ := factorQuery("web", nil)
	codeFrom(t, b.Submit(b.login(b.Authorize(q), "alice", alicePassword), url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}}))
	acct := b.Get(e.issuer + "/account")
	done := b.Submit(formAt(t, acct, "/account/recovery"), nil)
	codes := recoveryRE.FindAllStringSubmatch(done.Body, -1)
	if done.Status != http.StatusOK || len(codes) != 10 || codes[0][1] == old[0] {
		t.Fatalf("new recovery codes = %d:\n%s", done.Status, done.Body)
	}
	if err := e.mfa.UseRecoveryCode(context.Background(), e.alice.ID, old[1]); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("a replaced recovery code: %v", err)
	}

	e.clock.Add(11 * time.Minute)
	p := b.Submit(formAt(t, b.Get(e.issuer+"/account"), "/account/totp/remove"), nil)
	if !isOTPPage(p) {
		t.Fatalf("removal eleven minutes after the code = %d:\n%s", p.Status, p.Body)
	}
	if st, _ := e.mfa.Status(context.Background(), e.alice.ID); !st.TOTP {
		t.Fatal("the app was removed without a recent code")
	}
	if p := b.Submit(p, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}}); p.Status != http.StatusSeeOther || p.Location.Path != "/account" {
		t.Fatalf("the code again = %d %v", p.Status, p.Location)
	}
	if p := b.Submit(formAt(t, b.Get(e.issuer+"/account"), "/account/totp/remove"), nil); p.Status != http.StatusSeeOther {
		t.Fatalf("removal after a recent code = %d:\n%s", p.Status, p.Body)
	}
	if st, _ := e.mfa.Status(context.Background(), e.alice.ID); st.TOTP || st.RecoveryCodes != 0 {
		t.Fatalf("after the removal: %+v", st)
	}
	if p := b.Get(e.issuer + "/account"); !strings.Contains(p.Body, "Authenticator app: off") {
		t.Fatalf("account page after the removal:\n%s", p.Body)
	}
}

// TestAccount_LastFactorUnderRequirement: a user a second factor is
// required of cannot remove their last one, an app or a passkey, but can
// remove one while another remains, and any once the requirement is gone.
func TestAccount_LastFactorUnderRequirement(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true})
	e.webClient("web", nil)
	e.require(e.alice.ID, true)
	b := e.browser()
	q, _ := factorQuery("web", nil)
	enrol := b.login(b.Authorize(q), "alice", alicePassword)
	if !isEnrolPage(enrol) {
		t.Fatalf("required user without a factor = %d:\n%s", enrol.Status, enrol.Body)
	}
	b.Submit(enrol, url.Values{"code": {totp.Code(enrolKey(t, enrol), totp.Step(e.clock.Now()))}})
	acct := b.Get(e.issuer + "/account")
	if !strings.Contains(acct.Body, `id="factor-required"`) {
		t.Fatalf("account page of a required user:\n%s", acct.Body)
	}
	lastRefused := func(p page) bool {
		return p.Status == http.StatusConflict && strings.Contains(p.Body, "must have a second factor")
	}
	if p := b.Submit(formAt(t, acct, "/account/totp/remove"), nil); !lastRefused(p) {
		t.Fatalf("removing the last factor (app) = %d:\n%s", p.Status, p.Body)
	}
	key := newSoftKey(t, e.issuer, "localhost")
	if p := b.addPasskey(key, "laptop"); p.Status != http.StatusSeeOther {
		t.Fatalf("add passkey = %d", p.Status)
	}
	if p := b.Submit(formAt(t, b.Get(e.issuer+"/account"), "/account/totp/remove"), nil); p.Status != http.StatusSeeOther {
		t.Fatalf("removing the app beside a passkey = %d:\n%s", p.Status, p.Body)
	}
	removePasskey := func() page {
		acct := b.Get(e.issuer + "/account")
		i := strings.Index(acct.Body, `class="remove"`)
		if i < 0 {
			t.Fatalf("no remove form:\n%s", acct.Body)
		}
		start, end := strings.LastIndex(acct.Body[:i], "<form"), i+strings.Index(acct.Body[i:], "</form>")
		return b.Submit(page{Body: acct.Body[start:end]}, nil)
	}
	if p := removePasskey(); !lastRefused(p) {
		t.Fatalf("removing the last factor (passkey) = %d:\n%s", p.Status, p.Body)
	}
	if st, _ := e.mfa.Status(context.Background(), e.alice.ID); st.Passkeys != 1 {
		t.Fatalf("passkeys after the refusal: %d", st.Passkeys)
	}
	e.require(e.alice.ID, false)
	if p := removePasskey(); p.Status != http.StatusSeeOther {
		t.Fatalf("removing the passkey without the requirement = %d:\n%s", p.Status, p.Body)
	}
}

// TestRequirement_EnrolPasskey: where passkeys are on, the enrolment page
// offers a passkey beside the app; the new passkey's registration counts
// as the sign-in's second factor, and one made for another page is
// refused without a session.
func TestRequirement_EnrolPasskey(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true})
	secret := e.webClient("web", nil)
	e.require(e.alice.ID, true)
	key := newSoftKey(t, e.issuer, "localhost")

	other := e.browser()
	q, _ := factorQuery("web", nil)
	stale := other.login(other.Authorize(q), "alice", alicePassword)
	b := e.browser()
	q, verifier := factorQuery("web", nil)
	enrol := b.login(b.Authorize(q), "alice", alicePassword)
	if !isEnrolPage(enrol) || !strings.Contains(enrol.Body, `data-webauthn="create"`) {
		t.Fatalf("enrolment page with passkeys on = %d:\n%s", enrol.Status, enrol.Body)
	}
	action, v := passkeyForm(t, enrol)
	// An answer to another page's challenge.
	v.Set("credential", key.create(t, pageChallenge(t, stale)))
	if p := b.Post(e.issuer+action, v); p.Status != http.StatusBadRequest || p.Location != nil || hasSessionCookie(b) {
		t.Fatalf("passkey made for another page = %d %v", p.Status, p.Location)
	}
	v.Set("credential", key.create(t, pageChallenge(t, enrol)))
	c := e.idClaims(b.Post(e.issuer+action, v), "web", secret, verifier)
	if c["acr"] != sessions.ACRMFA || !slices.Equal(amrOf(c), []string{"pwd", "swk", "mfa"}) {
		t.Fatalf("sign-in with the enrolled passkey: acr %v amr %v", c["acr"], c["amr"])
	}
	if st, _ := e.mfa.Status(context.Background(), e.alice.ID); st.Passkeys != 1 || st.TOTP {
		t.Fatalf("factors after the passkey enrolment: %+v", st)
	}
}

// BenchmarkAuthorizeSession is GET /oauth2/authorize on a live password
// session (single sign-on) to a code, without a requirement and with
// required_for all during the grace period: the requirement adds the
// user's read and one store read (factors and the policy's start) to a
// request that commits a code.
func BenchmarkAuthorizeSession(b *testing.B) {
	for _, bc := range []struct {
		name   string
		policy mfa.Policy
	}{{"none", mfa.Policy{}}, {"all_in_grace", allWeek}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, envOptions{factors: true, policy: bc.policy})
			e.webClient("web", nil)
			cookie, _, err := e.sess.Start(context.Background(), e.alice.ID, e.clock.Now())
			if err != nil {
				b.Fatal(err)
			}
			q, _ := factorQuery("web", nil)
			target := "/oauth2/authorize?" + q.Encode()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, target, nil)
				req.AddCookie(&http.Cookie{Name: login.SessionCookie, Value: cookie})
				w := &discardWriter{h: http.Header{}}
				e.srv.ServeHTTP(w, req)
				if w.status != http.StatusFound {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// TestRequirement_DevicePage: the device page applies the requirement to
// its sign-in: past the grace period a user without a second factor is
// told to set one up on the account page, and the device gets nothing.
func TestRequirement_DevicePage(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, policy: mfa.Policy{RequiredFor: mfa.RequiredForAll}}) // no grace
	e.deviceClient("tv", nil)
	_, da, _ := e.startDevice("tv", "", nil)
	b := e.browser()
	p := b.login(b.enterCode(da.UserCode), "alice", alicePassword)
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "/account") || strings.Contains(p.Body, `value="allow"`) {
		t.Fatalf("device sign-in past the grace period = %d:\n%s", p.Status, p.Body)
	}
	if tr := e.poll("tv", "", da.DeviceCode); tr.status != http.StatusBadRequest || tr.str("access_token") != "" {
		t.Fatalf("device poll = %d %s", tr.status, tr.raw)
	}
}
