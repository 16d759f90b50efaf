package login_test

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/totp"
	"github.com/signet-auth/signet/users"
)

var (
	secretRE   = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7 ]+)</code>`)
	recoveryRE = regexp.MustCompile(`<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>`)
	qrRE       = regexp.MustCompile(`<img class="qr" src="data:image/png;base64,[^"]+"`)
)

// enrolTOTP signs b in as alice (a password session through client id)
// and sets up an authenticator app on /account; it returns the secret the
// page showed and the recovery codes.
func (e *env) enrolTOTP(b *browser, id, secret string) ([]byte, []string) {
	t := e.t
	t.Helper()
	e.flow(b, id, secret, nil)
	acct := b.Get(e.issuer + "/account")
	if acct.Status != http.StatusOK || !strings.Contains(acct.Body, "Authenticator app: off") {
		t.Fatalf("account page = %d:\n%s", acct.Status, acct.Body)
	}
	conf := b.Submit(acct, nil)
	m := secretRE.FindStringSubmatch(conf.Body)
	if m == nil || !qrRE.MatchString(conf.Body) {
		t.Fatalf("set-up page without QR code or key (%d):\n%s", conf.Status, conf.Body)
	}
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(m[1], " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	// A mistyped first code shows the same key again.
	bad := b.Submit(conf, url.Values{"code": {"000000"}})
	if bad.Status != http.StatusUnauthorized || secretRE.FindStringSubmatch(bad.Body)[1] != m[1] {
		t.Fatalf("wrong first code = %d:\n%s", bad.Status, bad.Body)
	}
	done := b.Submit(bad, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})
	var codes []string
	for _, r := range recoveryRE.FindAllStringSubmatch(done.Body, -1) {
		codes = append(codes, r[1])
	}
	if done.Status != http.StatusOK || len(codes) != 10 {
		t.Fatalf("confirmation = %d, %d recovery codes:\n%s", done.Status, len(codes), done.Body)
	}
	if p := b.Get(e.issuer + "/account"); !strings.Contains(p.Body, "Authenticator app: on") || !strings.Contains(p.Body, "Recovery codes left: 10") {
		t.Fatalf("account page after set-up:\n%s", p.Body)
	}
	e.clock.Add(totp.Period) // the confirming code's step is spent
	return key, codes
}

// factorQuery is a code request of client id with PKCE.
func factorQuery(id string, extra url.Values) (url.Values, string) {
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid"}, "nonce": {"n"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return q, verifier
}

// idClaims redeems the code on p and returns the ID token's claims.
func (e *env) idClaims(p page, id, secret, verifier string) map[string]any {
	e.t.Helper()
	tr := e.redeem(id, secret, codeFrom(e.t, p).Get("code"), "https://app.example/cb", verifier)
	if tr.status != http.StatusOK {
		e.t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	return signettest.Claims(e.t, tr.str("id_token"))
}

func amrOf(c map[string]any) []string {
	var out []string
	for _, v := range c["amr"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

func isOTPPage(p page) bool {
	return p.Status == http.StatusOK && strings.Contains(p.Body, `autocomplete="one-time-code"`) && strings.Contains(p.Body, `action="/login/otp"`)
}

// TestFactors_TOTPEnrolAndSignIn: alice sets up TOTP on the account page
// (QR code, key, first code, ten recovery codes); her next sign-in asks a
// code after the password; ID tokens say which factors were used (amr,
// acr), before and after, and a refresh keeps them; discovery lists the
// acr values.
func TestFactors_TOTPEnrolAndSignIn(t *testing.T) {
	e := newEnv(t, envOptions{factors: true})
	secret := e.webClient("web", nil)
	b := e.browser()
	q, verifier := factorQuery("web", nil)
	c := e.idClaims(b.login(b.Authorize(q), "alice", alicePassword), "web", secret, verifier)
	if !slices.Equal(amrOf(c), []string{"pwd"}) || c["acr"] != sessions.ACRPassword {
		t.Fatalf("password sign-in: amr %v acr %v", c["amr"], c["acr"])
	}
	key, _ := e.enrolTOTP(b, "web", secret)

	q, verifier = factorQuery("web", url.Values{"prompt": {"login"}, "scope": {"openid offline_access"}})
	otp := b.login(b.Authorize(q), "alice", alicePassword)
	if !isOTPPage(otp) {
		t.Fatalf("after the password, no code form (%d):\n%s", otp.Status, otp.Body)
	}
	if p := b.Submit(otp, url.Values{"code": {"123456"}}); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "not valid") {
		t.Fatalf("wrong code = %d", p.Status)
	}
	tr := e.redeem("web", secret, codeFrom(t, b.Submit(otp, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})).Get("code"), "https://app.example/cb", verifier)
	c = signettest.Claims(t, tr.str("id_token"))
	if !slices.Equal(amrOf(c), []string{"pwd", "otp", "mfa"}) || c["acr"] != sessions.ACRMFA {
		t.Fatalf("two-factor sign-in: amr %v acr %v", c["amr"], c["acr"])
	}
	r := e.token("web", secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}})
	if rc := signettest.Claims(t, r.str("id_token")); r.status != http.StatusOK || rc["acr"] != sessions.ACRMFA || len(amrOf(rc)) != 3 {
		t.Fatalf("refreshed ID token = %d %s", r.status, r.raw)
	}
	// max_age=0 asks for both factors again.
	q, _ = factorQuery("web", url.Values{"max_age": {"0"}})
	if p := b.login(b.Authorize(q), "alice", alicePassword); !isOTPPage(p) {
		t.Fatalf("max_age=0 did not ask the code again (%d)", p.Status)
	}
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		ACR    []string `json:"acr_values_supported"`
		Claims []string `json:"claims_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(md.ACR, []string{sessions.ACRPassword, sessions.ACRMFA, sessions.ACRUpstream}) || !slices.Contains(md.Claims, "amr") {
		t.Fatalf("discovery: acr_values_supported %v claims %v", md.ACR, md.Claims)
	}
}

// TestFactors_Attacks is the attack table of second factors.
func TestFactors_Attacks(t *testing.T) {
	t.Run("TOTP code replayed in the same step", func(t *testing.T) {
		e := newEnv(t, envOptions{factors: true})
		secret := e.webClient("web", nil)
		key, _ := e.enrolTOTP(e.browser(), "web", secret)
		code := totp.Code(key, totp.Step(e.clock.Now()))
		b1, b2 := e.browser(), e.browser()
		q, _ := factorQuery("web", nil)
		p1 := b1.login(b1.Authorize(q), "alice", alicePassword)
		p2 := b2.login(b2.Authorize(q), "alice", alicePassword)
		codeFrom(t, b1.Submit(p1, url.Values{"code": {code}}))
		if p := b2.Submit(p2, url.Values{"code": {code}}); p.Status != http.StatusUnauthorized || p.Location != nil {
			t.Fatalf("the same code again = %d %v", p.Status, p.Location)
		}
		// An older code of the window is refused too once a newer step was used.
		e.clock.Add(totp.Period)
		codeFrom(t, b2.Submit(p2, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}}))
		b3 := e.browser()
		p3 := b3.login(b3.Authorize(q), "alice", alicePassword)
		if p := b3.Submit(p3, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now())-1)}}); p.Status != http.StatusUnauthorized {
			t.Fatalf("the previous step's code after a newer one = %d", p.Status)
		}
	})
	t.Run("brute force hits the password's rate limit", func(t *testing.T) {
		e := newEnv(t, envOptions{factors: true, login: authority.LoginRateLimit{PerUserIP: 5, PerIP: 100, PerUser: 100, Window: time.Minute}})
		secret := e.webClient("web", nil)
		key, _ := e.enrolTOTP(e.browser(), "web", secret)
		b := e.browser()
		q, _ := factorQuery("web", nil)
		// One count of five: the mistyped first code of the enrolment,
		// two failed passwords and two failed codes.
		for range 2 {
			if p := b.login(b.Authorize(q), "alice", "wrong password"); p.Status != http.StatusUnauthorized {
				t.Fatalf("wrong password = %d", p.Status)
			}
		}
		otp := b.login(b.Authorize(q), "alice", alicePassword)
		for i := range 2 {
			if p := b.Submit(otp, url.Values{"code": {"00000" + string(rune('0'+i))}}); p.Status != http.StatusUnauthorized {
				t.Fatalf("wrong code %d = %d", i, p.Status)
			}
		}
		p := b.Submit(otp, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})
		if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" || p.Location != nil {
			t.Fatalf("right code while locked out = %d (Retry-After %q)", p.Status, p.Header.Get("Retry-After"))
		}
		e.clock.Add(time.Minute)
		codeFrom(t, b.Submit(otp, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}}))
	})
	t.Run("step-up bypass by replaying the older session cookie", func(t *testing.T) {
		e := newEnv(t, envOptions{factors: true})
		secret := e.webClient("web", nil)
		b := e.browser()
		// enrolTOTP signs in with the password (no TOTP yet): b keeps
		// that password-only session.
		key, _ := e.enrolTOTP(b, "web", secret)
		pwdCookies := b.Client.Jar.Cookies(mustURL(e.issuer))
		q, verifier := factorQuery("web", url.Values{"acr_values": {sessions.ACRMFA}})
		otp := b.Authorize(q)
		if !isOTPPage(otp) {
			t.Fatalf("acr_values mfa on a password session: no code form (%d):\n%s", otp.Status, otp.Body)
		}
		c := e.idClaims(b.Submit(otp, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}}), "web", secret, verifier)
		if c["acr"] != sessions.ACRMFA || !slices.Equal(amrOf(c), []string{"pwd", "otp", "mfa"}) {
			t.Fatalf("after step-up: acr %v amr %v", c["acr"], c["amr"])
		}
		// Another browser with the cookie of the password session.
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(mustURL(e.issuer), pwdCookies)
		replay := &browser{e: e, Browser: &signettest.Browser{T: e.t, Base: e.issuer, Client: &http.Client{Jar: jar, Transport: b.Client.Transport, CheckRedirect: b.Client.CheckRedirect}}}
		q, _ = factorQuery("web", url.Values{"acr_values": {sessions.ACRMFA}, "prompt": {"none"}})
		p := replay.Authorize(q)
		if p.Location == nil || p.Location.Query().Get("code") != "" || p.Location.Query().Get("error") != "login_required" {
			t.Fatalf("older session cookie after step-up = %d %v", p.Status, p.Location)
		}
		q, _ = factorQuery("web", url.Values{"acr_values": {sessions.ACRMFA}})
		if p := replay.Authorize(q); p.Location != nil || !strings.Contains(p.Body, `name="password"`) {
			t.Fatalf("older session cookie after step-up, interactive = %d %v", p.Status, p.Location)
		}
	})
	t.Run("recovery code used twice", func(t *testing.T) {
		e := newEnv(t, envOptions{factors: true})
		secret := e.webClient("web", nil)
		_, codes := e.enrolTOTP(e.browser(), "web", secret)
		b := e.browser()
		q, verifier := factorQuery("web", nil)
		otp := b.login(b.Authorize(q), "alice", alicePassword)
		c := e.idClaims(b.Submit(otp, url.Values{"code": {strings.ToUpper(codes[0])}}), "web", secret, verifier)
		if c["acr"] != sessions.ACRMFA {
			t.Fatalf("recovery code sign-in: acr %v", c["acr"])
		}
		b2 := e.browser()
		otp = b2.login(b2.Authorize(q), "alice", alicePassword)
		if p := b2.Submit(otp, url.Values{"code": {codes[0]}}); p.Status != http.StatusUnauthorized {
			t.Fatalf("recovery code again = %d", p.Status)
		}
		if st, _ := e.mfa.Status(context.Background(), e.alice.ID); st.RecoveryCodes != 9 {
			t.Fatalf("recovery codes left %d, want 9", st.RecoveryCodes)
		}
	})
	t.Run("user without TOTP asked for acr mfa", func(t *testing.T) {
		e := newEnv(t, envOptions{factors: true})
		secret := e.webClient("web", nil)
		e.webClient("strict", func(c *clients.Client) { c.RequireSecondFactor = true })
		b := e.browser()
		e.flow(b, "web", secret, nil) // a password session
		for _, row := range []struct {
			name string
			q    url.Values
		}{
			{"acr_values on a session", func() url.Values { q, _ := factorQuery("web", url.Values{"acr_values": {sessions.ACRMFA}}); return q }()},
			{"client that requires it", func() url.Values { q, _ := factorQuery("strict", nil); return q }()},
		} {
			p := b.Authorize(row.q)
			if p.Location == nil || p.Location.Query().Get("error") != "unmet_authentication_requirements" {
				t.Errorf("%s = %d %v", row.name, p.Status, p.Location)
			}
		}
		// After a fresh password too.
		q, _ := factorQuery("strict", url.Values{"prompt": {"login"}})
		p := b.login(b.Authorize(q), "alice", alicePassword)
		if p.Location == nil || p.Location.Query().Get("error") != "unmet_authentication_requirements" || p.Location.Query().Get("code") != "" {
			t.Errorf("client requiring a second factor, fresh password = %d %v", p.Status, p.Location)
		}
	})
	t.Run("admin scope needs a second factor", func(t *testing.T) {
		e := newEnv(t, envOptions{factors: true})
		secret := e.webClient("ops", func(c *clients.Client) { c.Scopes = append(c.Scopes, authority.AdminScope) })
		roles := []string{authority.AdminScope}
		if _, _, err := e.srv.Users().Update(context.Background(), e.alice.ID, users.Patch{Roles: &roles}); err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		q, _ := factorQuery("ops", url.Values{"scope": {"openid " + authority.AdminScope}})
		p := b.login(b.Authorize(q), "alice", alicePassword)
		if p.Location == nil || p.Location.Query().Get("error") != "unmet_authentication_requirements" {
			t.Fatalf("admin scope with a password only = %d %v", p.Status, p.Location)
		}
		key, _ := e.enrolTOTP(b, "ops", secret)
		q, verifier := factorQuery("ops", url.Values{"scope": {"openid " + authority.AdminScope}})
		otp := b.Authorize(q)
		if !isOTPPage(otp) {
			t.Fatalf("admin scope on a password session: no code form (%d)", otp.Status)
		}
		tr := e.redeem("ops", secret, codeFrom(t, b.Submit(otp, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})).Get("code"), "https://app.example/cb", verifier)
		if tr.status != http.StatusOK || !strings.Contains(tr.str("scope"), authority.AdminScope) {
			t.Fatalf("admin scope after the second factor = %d %s", tr.status, tr.raw)
		}
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestFactors_DeviceSignIn: the device page asks a user who set up an
// authenticator app for a code after the password, before the
// confirmation, and refuses a wrong one; a client that requires a second
// factor steps a password session up; the device's ID token says so.
func TestFactors_DeviceSignIn(t *testing.T) {
	e := newEnv(t, envOptions{factors: true})
	secret := e.webClient("web", nil)
	b0 := e.browser()
	key, _ := e.enrolTOTP(b0, "web", secret) // b0 keeps a password session
	e.deviceClient("strict-tv", func(c *clients.Client) { c.RequireSecondFactor = true })
	_, strict, _ := e.startDevice("strict-tv", "", url.Values{"scope": {"openid"}})
	p0 := b0.enterCode(strict.UserCode)
	if !isOTPPage(p0) {
		t.Fatalf("client requiring a second factor, password session: no code form (%d):\n%s", p0.Status, p0.Body)
	}
	p0 = b0.Submit(p0, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})
	if p := b0.Submit(p0, url.Values{"decision": {"allow"}}); !strings.Contains(p.Body, "device-done") {
		t.Fatalf("after step-up and allow: %d\n%s", p.Status, p.Body)
	}
	e.clock.Add(totp.Period)
	tr := e.poll("strict-tv", "", strict.DeviceCode)
	if c := signettest.Claims(t, tr.str("id_token")); tr.status != http.StatusOK || c["acr"] != sessions.ACRMFA || len(amrOf(c)) != 3 {
		t.Fatalf("device ID token after step-up = %d %s", tr.status, tr.raw)
	}
	e.deviceClient("tv", nil)
	_, da, _ := e.startDevice("tv", "", nil)
	b := e.browser()
	p := b.login(b.enterCode(da.UserCode), "alice", alicePassword)
	if !isOTPPage(p) || strings.Contains(p.Body, `value="allow"`) {
		t.Fatalf("device sign-in of a TOTP user: no code form (%d):\n%s", p.Status, p.Body)
	}
	if w := b.Submit(p, url.Values{"code": {"999999"}}); w.Status != http.StatusUnauthorized {
		t.Fatalf("wrong code on the device page = %d", w.Status)
	}
	p = b.Submit(p, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})
	if !strings.Contains(p.Body, `value="allow"`) || !strings.Contains(p.Body, da.UserCode) {
		t.Fatalf("after the code: no confirmation (%d):\n%s", p.Status, p.Body)
	}
}

// TestFactors_AccountSignIn: the account page signs a browser without a
// session in by itself (password, then the code once an app is set up)
// and sends it back to the account page.
func TestFactors_AccountSignIn(t *testing.T) {
	e := newEnv(t, envOptions{factors: true})
	b := e.browser()
	p := b.Get(e.issuer + "/account")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `action="/account/login"`) {
		t.Fatalf("account page without a session = %d:\n%s", p.Status, p.Body)
	}
	if w := b.login(p, "alice", "wrong password"); w.Status != http.StatusUnauthorized {
		t.Fatalf("wrong password = %d", w.Status)
	}
	p = b.login(b.Get(e.issuer+"/account"), "alice", alicePassword)
	if p.Status != http.StatusSeeOther || p.Location == nil || p.Location.Path != "/account" {
		t.Fatalf("account sign-in = %d %v", p.Status, p.Location)
	}
	p = b.Get(e.issuer + "/account")
	if !strings.Contains(p.Body, "Authenticator app: off") {
		t.Fatalf("account page after sign-in:\n%s", p.Body)
	}
	conf := b.Submit(p, nil)
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(secretRE.FindStringSubmatch(conf.Body)[1], " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	if done := b.Submit(conf, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}}); len(recoveryRE.FindAllString(done.Body, -1)) != 10 {
		t.Fatalf("set-up from the account sign-in:\n%s", done.Body)
	}
	e.clock.Add(totp.Period)
	b2 := e.browser()
	otp := b2.login(b2.Get(e.issuer+"/account"), "alice", alicePassword)
	if !isOTPPage(otp) {
		t.Fatalf("account sign-in with an app: no code form (%d)", otp.Status)
	}
	p = b2.Submit(otp, url.Values{"code": {totp.Code(key, totp.Step(e.clock.Now()))}})
	if p.Status != http.StatusSeeOther || p.Location == nil || p.Location.Path != "/account" {
		t.Fatalf("account code = %d %v", p.Status, p.Location)
	}
	if p = b2.Get(e.issuer + "/account"); !strings.Contains(p.Body, "Authenticator app: on") {
		t.Fatalf("account page after the code:\n%s", p.Body)
	}
}
