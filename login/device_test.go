package login_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/sessions"
)

// deviceClient registers a public client with the device grant (and
// refresh tokens), as a command-line tool would have.
func (e *env) deviceClient(id string, mod func(*clients.Client)) {
	e.t.Helper()
	e.webClient(id, func(cl *clients.Client) {
		cl.ClientName = "Terminal Tool"
		cl.GrantTypes = []string{clients.GrantDeviceCode, clients.GrantRefreshToken}
		cl.RedirectURIs, cl.PostLogoutRedirectURIs = nil, nil
		cl.Public, cl.AuthMethods = true, []string{clients.AuthNone}
		if mod != nil {
			mod(cl)
		}
	})
}

type deviceAuth struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// startDevice posts to the device authorization endpoint (secret "" is a
// public client: client_id in the body).
func (e *env) startDevice(id, secret string, form url.Values) (int, deviceAuth, map[string]any) {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if secret == "" {
		form.Set("client_id", id)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/device_authorization", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var da deviceAuth
	var m map[string]any
	_ = json.Unmarshal(b, &da)
	_ = json.Unmarshal(b, &m)
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("device authorization Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, da, m
}

func (e *env) poll(id, secret, deviceCode string) tokenResponse {
	e.t.Helper()
	return e.token(id, secret, url.Values{"grant_type": {clients.GrantDeviceCode}, "device_code": {deviceCode}})
}

func wantError(t *testing.T, name string, tr tokenResponse, code string) {
	t.Helper()
	if tr.status != http.StatusBadRequest || tr.str("error") != code {
		t.Fatalf("%s: %d %s, want 400 %s", name, tr.status, tr.raw, code)
	}
}

// enterCode types code on the hosted page and returns the next page.
func (b *browser) enterCode(code string) page {
	b.e.t.Helper()
	p := b.Get(b.e.issuer + authority.DevicePath)
	if p.Status != http.StatusOK {
		b.e.t.Fatalf("GET /device = %d", p.Status)
	}
	return b.Submit(p, url.Values{"user_code": {code}})
}

// approve enters code, signs in if asked and answers the confirmation.
func (b *browser) approve(code, decision string) page {
	b.e.t.Helper()
	p := b.enterCode(code)
	if strings.Contains(p.Body, `name="password"`) {
		p = b.login(p, "alice", alicePassword)
	}
	if !strings.Contains(p.Body, `value="allow"`) {
		b.e.t.Fatalf("no confirmation page (status %d):\n%s", p.Status, p.Body)
	}
	return b.Submit(p, url.Values{"decision": {decision}})
}

// TestDevice_Flow: a public client gets a code, the user types it (in
// lower case, without the dash) on the hosted page, signs in and allows;
// polls answer authorization_pending until then, and tokens after.
func TestDevice_Flow(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deviceClient("tv", nil)
	status, da, raw := e.startDevice("tv", "", url.Values{"scope": {"openid read"}})
	if status != http.StatusOK {
		t.Fatalf("device authorization = %d %v", status, raw)
	}
	if da.VerificationURI != e.issuer+"/device" || da.VerificationURIComplete != e.issuer+"/device?user_code="+da.UserCode ||
		da.ExpiresIn != 600 || da.Interval != 5 || len(da.DeviceCode) != 43 {
		t.Fatalf("device authorization response %+v", da)
	}
	if len(da.UserCode) != 9 || da.UserCode[4] != '-' || strings.ContainsAny(da.UserCode, "AEIOUY0123456789") {
		t.Fatalf("user code %q: want XXXX-XXXX of consonants", da.UserCode)
	}
	wantError(t, "poll before approval", e.poll("tv", "", da.DeviceCode), "authorization_pending")

	b := e.browser()
	// verification_uri_complete fills the form in.
	if p := b.Get(da.VerificationURIComplete); !strings.Contains(p.Body, `value="`+da.UserCode+`"`) {
		t.Fatalf("verification_uri_complete does not fill the code in:\n%s", p.Body)
	}
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", " "))
	p := b.enterCode(typed)
	if !strings.Contains(p.Body, `name="password"`) || !strings.Contains(p.Body, "Terminal Tool") {
		t.Fatalf("no login page naming the client after the code:\n%s", p.Body)
	}
	p = b.login(p, "alice", alicePassword)
	if !strings.Contains(p.Body, da.UserCode) || !strings.Contains(p.Body, "Terminal Tool") || !strings.Contains(p.Body, "(read)") {
		t.Fatalf("confirmation page does not show client, code and scopes:\n%s", p.Body)
	}
	e.clock.Add(5 * time.Second)
	wantError(t, "poll before the decision", e.poll("tv", "", da.DeviceCode), "authorization_pending")
	p = b.Submit(p, url.Values{"decision": {"allow"}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "device-done") {
		t.Fatalf("after allow: %d\n%s", p.Status, p.Body)
	}
	e.clock.Add(5 * time.Second)
	tr := e.poll("tv", "", da.DeviceCode)
	if tr.status != http.StatusOK || tr.str("access_token") == "" || tr.str("refresh_token") == "" || tr.str("id_token") == "" {
		t.Fatalf("poll after approval = %d %s", tr.status, tr.raw)
	}
	at := signettest.Claims(t, tr.str("access_token"))
	if at["sub"] != e.alice.ID || at["scope"] != "openid read" || at["client_id"] != "tv" {
		t.Errorf("access token claims %v", at)
	}
	if id := signettest.Claims(t, tr.str("id_token")); id["sub"] != e.alice.ID || id["aud"] != "tv" {
		t.Errorf("ID token claims %v", id)
	}
	// The refresh token works like any other.
	rt := e.token("tv", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}})
	if rt.status != http.StatusOK {
		t.Errorf("refresh = %d %s", rt.status, rt.raw)
	}

	// A second device login in the same browser uses the SSO session:
	// no password, but the confirmation is still shown.
	_, da2, _ := e.startDevice("tv", "", nil)
	p = b.enterCode(da2.UserCode)
	if strings.Contains(p.Body, `name="password"`) || !strings.Contains(p.Body, `value="allow"`) {
		t.Fatalf("second device login: want the confirmation without a password:\n%s", p.Body)
	}
}

// TestDevice_Attacks: each row is an attack on the device flow.
func TestDevice_Attacks(t *testing.T) {
	t.Run("guessed user codes are limited per address", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		b := e.browser()
		for i := range 10 {
			p := b.enterCode(fmt.Sprintf("BBBB-BBB%c", "BCDFGHJKLM"[i]))
			if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not valid") {
				t.Fatalf("wrong code %d: %d\n%s", i, p.Status, p.Body)
			}
		}
		// Now even the right code is refused from this address.
		p := b.enterCode(da.UserCode)
		if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" || strings.Contains(p.Body, `value="allow"`) {
			t.Fatalf("11th code: %d (Retry-After %q)\n%s", p.Status, p.Header.Get("Retry-After"), p.Body)
		}
		e.clock.Add(time.Minute)
		if p := b.enterCode(da.UserCode); !strings.Contains(p.Body, `name="password"`) {
			t.Fatalf("after the window the right code should work: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("replayed device code", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		e.browser().approve(da.UserCode, "allow")
		tr := e.poll("tv", "", da.DeviceCode)
		if tr.status != http.StatusOK {
			t.Fatalf("first redemption = %d %s", tr.status, tr.raw)
		}
		if status, _, _ := e.userinfo(tr.str("access_token")); status != http.StatusOK {
			t.Fatalf("userinfo before the replay = %d", status)
		}
		e.clock.Add(10 * time.Second)
		wantError(t, "replay", e.poll("tv", "", da.DeviceCode), "invalid_grant")
		// The code leaked: what it issued is revoked.
		if status, _, _ := e.userinfo(tr.str("access_token")); status != http.StatusUnauthorized {
			t.Errorf("userinfo with the access token after the replay = %d, want 401", status)
		}
		if rt := e.token("tv", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}); rt.status != http.StatusBadRequest {
			t.Errorf("refresh after the replay = %d %s, want 400", rt.status, rt.raw)
		}
		// The user code is spent too.
		if p := e.browser().enterCode(da.UserCode); p.Status != http.StatusBadRequest {
			t.Fatalf("spent user code entered again: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("polled too fast", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		wantError(t, "first poll", e.poll("tv", "", da.DeviceCode), "authorization_pending")
		tr := e.poll("tv", "", da.DeviceCode)
		wantError(t, "second poll at once", tr, "slow_down")
		if !strings.Contains(tr.str("error_description"), "10 seconds") {
			t.Errorf("slow_down description %q: want the new interval (10 seconds)", tr.str("error_description"))
		}
		e.clock.Add(5 * time.Second) // the old interval: too fast now
		wantError(t, "poll after 5 s", e.poll("tv", "", da.DeviceCode), "slow_down")
		e.clock.Add(15 * time.Second) // the interval is 15 s now
		wantError(t, "poll after 15 s", e.poll("tv", "", da.DeviceCode), "authorization_pending")
	})
	t.Run("expired", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		e.clock.Add(sessions.DefaultDeviceCodeTTL)
		wantError(t, "poll after expiry", e.poll("tv", "", da.DeviceCode), "expired_token")
		if p := e.browser().enterCode(da.UserCode); p.Status != http.StatusBadRequest {
			t.Fatalf("expired user code: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("denied", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		p := e.browser().approve(da.UserCode, "deny")
		if !strings.Contains(p.Body, "Device denied") {
			t.Fatalf("after deny:\n%s", p.Body)
		}
		wantError(t, "poll after deny", e.poll("tv", "", da.DeviceCode), "access_denied")
		wantError(t, "poll again after deny", e.poll("tv", "", da.DeviceCode), "invalid_grant")
	})
	t.Run("another client polls a stolen device code", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		e.deviceClient("thief", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		e.browser().approve(da.UserCode, "allow")
		wantError(t, "thief", e.poll("thief", "", da.DeviceCode), "invalid_grant")
		if tr := e.poll("tv", "", da.DeviceCode); tr.status != http.StatusOK {
			t.Fatalf("the owner after the thief's try = %d %s", tr.status, tr.raw)
		}
	})
	t.Run("client deleted and created again", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		e.browser().approve(da.UserCode, "allow")
		if err := e.srv.Clients().Delete(context.Background(), "tv"); err != nil {
			t.Fatal(err)
		}
		e.deviceClient("tv", nil)
		wantError(t, "new instance polls the old code", e.poll("tv", "", da.DeviceCode), "invalid_grant")
		// And a code asked for by the old instance cannot be approved.
		_, da2, _ := e.startDevice("tv", "", nil)
		if err := e.srv.Clients().Delete(context.Background(), "tv"); err != nil {
			t.Fatal(err)
		}
		e.deviceClient("tv", nil)
		if p := e.browser().enterCode(da2.UserCode); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Unknown application") {
			t.Fatalf("code of a deleted instance: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("the approving session ended before the poll", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		e.browser().approve(da.UserCode, "allow")
		if _, err := sessions.EndUser(context.Background(), e.store, e.alice.ID); err != nil {
			t.Fatal(err)
		}
		wantError(t, "poll after logout", e.poll("tv", "", da.DeviceCode), "invalid_grant")
	})
	t.Run("confirmation without the browser cookie", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.deviceClient("tv", nil)
		_, da, _ := e.startDevice("tv", "", nil)
		b := e.browser()
		p := b.login(b.enterCode(da.UserCode), "alice", alicePassword)
		action, v := signettest.FormOf(t, p)
		v.Set("decision", "allow")
		other := e.browser() // a cross-site form post carries none of b's cookies
		if got := other.Post(e.issuer+action, v); got.Status != http.StatusForbidden {
			t.Fatalf("forged confirmation = %d\n%s", got.Status, got.Body)
		}
		wantError(t, "poll after the forged confirmation", e.poll("tv", "", da.DeviceCode), "authorization_pending")
	})
}

// TestDevice_Authorization: the device authorization endpoint authenticates
// clients as the token endpoint does and applies the scope rules.
func TestDevice_Authorization(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deviceClient("tv", nil)
	secret := e.webClient("box", func(cl *clients.Client) {
		cl.GrantTypes = []string{clients.GrantDeviceCode}
		cl.RedirectURIs, cl.PostLogoutRedirectURIs = nil, nil
		cl.Scopes = append(cl.Scopes, authority.AdminScope)
	})
	e.webClient("web", nil)
	for _, row := range []struct {
		name, id, secret string
		form             url.Values
		status           int
		err              string
	}{
		{"confidential client", "box", secret, nil, 200, ""},
		{"wrong secret", "box", "nope", nil, 401, "invalid_client"},
		{"confidential client without its secret", "box", "", nil, 401, "invalid_client"},
		{"unknown client", "ghost", "", nil, 401, "invalid_client"},
		{"client without the device grant", "web", "", nil, 401, "invalid_client"},
		{"scope the client lacks", "tv", "", url.Values{"scope": {"write"}}, 400, "invalid_scope"},
		{"admin scope", "box", secret, url.Values{"scope": {authority.AdminScope}}, 400, "invalid_scope"},
	} {
		t.Run(row.name, func(t *testing.T) {
			status, _, body := e.startDevice(row.id, row.secret, row.form)
			if status != row.status || (row.err != "" && body["error"] != row.err) {
				t.Errorf("= %d %v, want %d %s", status, body, row.status, row.err)
			}
		})
	}
	webSecret := e.webClient("web2", nil)
	if status, _, body := e.startDevice("web2", webSecret, nil); status != 400 || body["error"] != "unauthorized_client" {
		t.Errorf("client without the device grant = %d %v, want 400 unauthorized_client", status, body)
	}
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Endpoint string   `json:"device_authorization_endpoint"`
		Grants   []string `json:"grant_types_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&md)
	if md.Endpoint != e.issuer+"/oauth2/device_authorization" || !slices.Contains(md.Grants, clients.GrantDeviceCode) {
		t.Errorf("discovery: %+v", md)
	}
}

// TestDevice_ThirdPartyConsent: a third-party client's approval is
// remembered as a consent (so withdrawing it ends the refreshes), and the
// privileged-scope rule holds for what the user may hold.
func TestDevice_ThirdPartyConsent(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deviceClient("tool", func(cl *clients.Client) { cl.FirstParty = false })
	_, da, _ := e.startDevice("tool", "", url.Values{"scope": {"read"}})
	p := e.browser().approve(da.UserCode, "allow")
	if !strings.Contains(p.Body, "device-done") {
		t.Fatalf("after allow:\n%s", p.Body)
	}
	tr := e.poll("tool", "", da.DeviceCode)
	if tr.status != http.StatusOK || tr.str("refresh_token") == "" {
		t.Fatalf("poll = %d %s", tr.status, tr.raw)
	}
	list, err := authority.Consents(context.Background(), e.store, e.alice.ID)
	if err != nil || len(list) != 1 || list[0].ClientID != "tool" {
		t.Fatalf("consents = %+v, %v", list, err)
	}
	if _, _, err := authority.WithdrawConsent(context.Background(), e.store, e.alice.ID, "tool", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if rt := e.token("tool", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}); rt.status == http.StatusOK {
		t.Errorf("refresh after the consent was withdrawn = %d", rt.status)
	}
}

// TestDevice_Purge: expired device codes go with the other purges.
func TestDevice_Purge(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deviceClient("tv", nil)
	_, old, _ := e.startDevice("tv", "", nil)
	e.clock.Add(sessions.DefaultDeviceCodeTTL + time.Hour)
	_, live, _ := e.startDevice("tv", "", nil)
	for _, r := range e.sess.Purge(context.Background()) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Kind == "device_codes" && r.Deleted != 2 { // the code and its user code
			t.Fatalf("Purge deleted %d device records, want 2 (the expired device code and its user code)", r.Deleted)
		}
	}
	wantError(t, "purged code", e.poll("tv", "", old.DeviceCode), "invalid_grant")
	wantError(t, "live code", e.poll("tv", "", live.DeviceCode), "authorization_pending")
}

// TestDevice_StartFlood: one address cannot fill the store (or the user
// code space) with device authorizations.
func TestDevice_StartFlood(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deviceClient("tv", nil)
	for i := range 30 {
		if status, _, body := e.startDevice("tv", "", nil); status != http.StatusOK {
			t.Fatalf("authorization %d = %d %v", i, status, body)
		}
	}
	status, _, body := e.startDevice("tv", "", nil)
	if status != http.StatusTooManyRequests || body["error"] != "temporarily_unavailable" {
		t.Fatalf("31st authorization in a minute = %d %v, want 429", status, body)
	}
	e.clock.Add(time.Minute)
	if status, _, _ := e.startDevice("tv", "", nil); status != http.StatusOK {
		t.Fatalf("after the window = %d", status)
	}
}
