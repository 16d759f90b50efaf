package login_test

import (
	"context"
	"github.com/signet-auth/signet/internal/signettest"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/login"
)

// hasSession reports whether b holds a session cookie of its Signet.
func hasSession(b *browser) bool {
	u, _ := url.Parse(b.e.issuer)
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == login.SessionCookie {
			return true
		}
	}
	return false
}

// TestDeviceSignIn_NoPasswordDeployment: in an upstream-only deployment
// (password_login: false) the device page's sign-in shows no password
// form and refuses its POST with alice's right password (403, no
// session, the device still waiting); its passkey button signs alice in
// without a password and goes on to the device's confirmation, after
// which the device gets tokens whose amr says passkey. The attack rows
// are refused without a session: the page's passkey form posted from
// another browser (its cookie is not the one the page was made for),
// the form used again after the sign-in, the form sent as the
// application sign-in's or the account page's (the kind is in the MAC'd
// transaction), and a passkey that is not alice's.
func TestDeviceSignIn_NoPasswordDeployment(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true, noPassword: true})
	e.deviceClient("tv", nil)
	k := newSoftKey(t, e.issuer, "localhost")
	// Added as the account page would have (this deployment signs in to
	// it through a provider or a passkey).
	if err := e.mfa.AddPasskey(context.Background(), e.alice.ID, "laptop", webauthn.Credential{ID: k.id, PublicKey: k.coseKey(t), AttestationType: "none",
		Flags: webauthn.CredentialFlags{UserPresent: true, UserVerified: true}}); err != nil {
		t.Fatal(err)
	}
	_, da, _ := e.startDevice("tv", "", url.Values{"scope": {"openid read"}})
	b := e.browser()
	p := b.enterCode(da.UserCode)
	if p.Status != http.StatusOK || strings.Contains(p.Body, `id="password"`) || !strings.Contains(p.Body, `id="sign-in-passkey"`) ||
		!strings.Contains(p.Body, "Terminal Tool") {
		t.Fatalf("device sign-in of an upstream-only deployment = %d:\n%s", p.Status, p.Body)
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("device sign-in page CSP %q does not allow webauthn.js", csp)
	}
	_, f := passkeyForm(t, p)
	if f.Get("kind") != "device_login" {
		t.Fatalf("device passkey form kind %q", f.Get("kind"))
	}
	pw := url.Values{"tx": f["tx"], "csrf": f["csrf"], "username": {"alice"}, "password": {alicePassword}}
	if r := b.Post(e.issuer+authority.DevicePath+"/login", pw); r.Status != http.StatusForbidden || r.Location != nil ||
		!strings.Contains(r.Body, "Password sign-in is off") || hasSession(b) {
		t.Fatalf("device sign-in with a password in an upstream-only deployment = %d %v:\n%s", r.Status, r.Location, r.Body)
	}
	e.clock.Add(6 * time.Second)
	wantError(t, "poll after the refused password", e.poll("tv", "", da.DeviceCode), "authorization_pending")

	attacks := []struct {
		name   string
		status int
		run    func(t *testing.T) page
	}{
		{"the page's form from another browser", http.StatusForbidden, func(t *testing.T) page {
			other := e.browser()
			other.Get(e.issuer + authority.DevicePath) // its own browser cookie
			r := other.passkeyPost(f, k.get(t, pageChallenge(t, p), e.alice.ID))
			if hasSession(other) {
				t.Fatal("the other browser got a session")
			}
			return r
		}},
		{"the form sent as an application sign-in's", http.StatusForbidden, func(t *testing.T) page {
			v := url.Values{"tx": f["tx"], "csrf": f["csrf"], "kind": {"login"}}
			return b.passkeyPost(v, k.get(t, pageChallenge(t, p), e.alice.ID))
		}},
		{"the form sent as the account page's", http.StatusForbidden, func(t *testing.T) page {
			v := url.Values{"tx": f["tx"], "csrf": f["csrf"], "kind": {"account_login"}}
			return b.passkeyPost(v, k.get(t, pageChallenge(t, p), e.alice.ID))
		}},
		{"a passkey that is not alice's", http.StatusUnauthorized, func(t *testing.T) page {
			stranger := newSoftKey(t, e.issuer, "localhost")
			r := b.passkeyPost(f, stranger.get(t, pageChallenge(t, p), e.alice.ID))
			if !strings.Contains(r.Body, "This passkey was not accepted") || !strings.Contains(r.Body, `id="sign-in-passkey"`) ||
				strings.Contains(r.Body, `id="password"`) {
				t.Fatalf("refusal is not the device sign-in page again:\n%s", r.Body)
			}
			return r
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := a.run(t)
			if r.Status != a.status || r.Location != nil || strings.Contains(r.Body, `value="allow"`) || hasSession(b) {
				t.Fatalf("status %d (want %d), location %v, session %v:\n%s", r.Status, a.status, r.Location, hasSession(b), r.Body)
			}
			e.clock.Add(6 * time.Second) // the device's polling interval
			wantError(t, "poll", e.poll("tv", "", da.DeviceCode), "authorization_pending")
		})
	}

	// The passkey alone signs alice in and the device page goes on to
	// its confirmation for the same code.
	consent := b.passkeyPost(f, k.get(t, pageChallenge(t, p), e.alice.ID))
	if consent.Status != http.StatusOK || !strings.Contains(consent.Body, `value="allow"`) || !strings.Contains(consent.Body, da.UserCode) {
		t.Fatalf("device passkey sign-in = %d, not the confirmation:\n%s", consent.Status, consent.Body)
	}
	if r := b.passkeyPost(f, k.get(t, pageChallenge(t, p), e.alice.ID)); r.Status != http.StatusBadRequest ||
		strings.Contains(r.Body, `value="allow"`) || strings.Contains(r.Body, "/oauth2/authorize?") {
		t.Fatalf("the device passkey form used again = %d:\n%s", r.Status, r.Body)
	}
	if done := b.Submit(consent, url.Values{"decision": {"allow"}}); done.Status != http.StatusOK || !strings.Contains(done.Body, "device-done") {
		t.Fatalf("after allow = %d:\n%s", done.Status, done.Body)
	}
	e.clock.Add(5 * time.Second)
	tr := e.poll("tv", "", da.DeviceCode)
	if tr.status != http.StatusOK || tr.str("access_token") == "" || tr.str("id_token") == "" {
		t.Fatalf("poll after the passkey sign-in = %d %s", tr.status, tr.raw)
	}
	id := signettest.Claims(t, tr.str("id_token"))
	if id["sub"] != e.alice.ID || !slices.Equal(amrOf(id), []string{"swk", "user", "mfa"}) {
		t.Fatalf("device ID token after a passkey sign-in: %v", id)
	}
}

// TestDeviceSignIn_PasswordOn: with password sign-in on (the default),
// the device page's sign-in has both the password form and the passkey
// button; the password still signs in as before.
func TestDeviceSignIn_PasswordOn(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true})
	e.deviceClient("tv", nil)
	_, da, _ := e.startDevice("tv", "", nil)
	b := e.browser()
	p := b.enterCode(da.UserCode)
	if !strings.Contains(p.Body, `id="password"`) || !strings.Contains(p.Body, `id="sign-in-passkey"`) {
		t.Fatalf("device sign-in with passwords on:\n%s", p.Body)
	}
	if c := b.login(p, "alice", alicePassword); !strings.Contains(c.Body, `value="allow"`) {
		t.Fatalf("password sign-in on the device page = %d:\n%s", c.Status, c.Body)
	}
}
