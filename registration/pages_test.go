package registration_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
)

// TestUnverifiedOnEveryPage: a client that chose its own name (registered
// dynamically, or named by its metadata document) is marked "(unverified)"
// with where its identity comes from on every page that shows its name:
// the login page, the consent page, and the device flow's sign-in and
// confirmation pages. An operator's client is not marked.
func TestUnverifiedOnEveryPage(t *testing.T) {
	p := defaultPolicy()
	p.GrantTypes = []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken, clients.GrantDeviceCode}
	e := newEnv(t, envOptions{policy: p})
	host := strings.TrimPrefix(e.docs.URL, "https://")

	md := publicClient()
	md["client_name"] = "Google Drive"
	md["grant_types"] = []string{"authorization_code", "refresh_token", clients.GrantDeviceCode}
	reg := e.register(md)
	if reg.status != http.StatusCreated {
		t.Fatalf("register = %d %s", reg.status, reg.raw)
	}
	dcr := reg.str("client_id")
	doc := docTool()
	doc["client_name"] = "Google Drive"
	doc["grant_types"] = []string{"authorization_code", "refresh_token", clients.GrantDeviceCode}
	cimd := e.serveJSON("/drive.json", doc)
	op := "operator-app"
	if _, _, err := e.srv.Clients().Create(t.Context(), clients.Client{ID: op, ClientName: "Operator App", Public: true,
		AuthMethods: []string{clients.AuthNone}, RedirectURIs: []string{"http://127.0.0.1:40001/cb"},
		GrantTypes: []string{clients.GrantAuthorizationCode, clients.GrantDeviceCode}, Scopes: []string{"mcp:tools"}, Audiences: []string{resource}}); err != nil {
		t.Fatal(err)
	}

	mark := func(source string) []string {
		return []string{"Google Drive</strong> (unverified)", "Unverified application: its name is what it calls itself. Identity: " + source + "."}
	}
	check := func(t *testing.T, page, body string, want []string, marked bool) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q:\n%s", page, w, body)
			}
		}
		if !marked && strings.Contains(body, "nverified") {
			t.Errorf("%s marks an operator's client unverified:\n%s", page, body)
		}
	}
	for _, tc := range []struct {
		name, id, redirect, source string
		marked                     bool
	}{
		{"registered dynamically", dcr, "http://127.0.0.1/callback", "registered dynamically", true},
		{"metadata document", cimd, "http://127.0.0.1:40001/cb", host, true},
		{"operator's client", op, "http://127.0.0.1:40001/cb", "", false},
	} {
		want := mark(tc.source)
		if !tc.marked {
			want = []string{"Operator App"}
		}
		t.Run(tc.name+"/login page", func(t *testing.T) {
			_, challenge := signettest.PKCE()
			pg := e.browser().Authorize(url.Values{"response_type": {"code"}, "client_id": {tc.id}, "redirect_uri": {tc.redirect},
				"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
			if !strings.Contains(pg.Body, `name="password"`) {
				t.Fatalf("no login page (%d):\n%s", pg.Status, pg.Body)
			}
			check(t, "login page", pg.Body, want, tc.marked)
		})
		if tc.marked {
			t.Run(tc.name+"/consent page", func(t *testing.T) {
				e.authorizeCode(e.browser(), tc.id, tc.redirect, "mcp:tools", func(consent string) {
					check(t, "consent page", consent, []string{"Google Drive (unverified) wants to access your account", want[1]}, true)
				})
			})
		}
		t.Run(tc.name+"/device pages", func(t *testing.T) {
			code := e.startDevice(tc.id)
			b := e.browser()
			pg := b.Get(e.issuer + authority.DevicePath + "?user_code=" + url.QueryEscape(code))
			pg = b.Submit(pg, url.Values{"user_code": {code}})
			if !strings.Contains(pg.Body, `name="password"`) {
				t.Fatalf("no device sign-in page (%d):\n%s", pg.Status, pg.Body)
			}
			check(t, "device sign-in page", pg.Body, want, tc.marked)
			pg = b.Submit(pg, url.Values{"username": {"alice"}, "password": {alicePassword}})
			if !strings.Contains(pg.Body, `value="allow"`) {
				t.Fatalf("no device confirmation page (%d):\n%s", pg.Status, pg.Body)
			}
			if tc.marked {
				want = []string{"Google Drive (unverified) on a device wants to access your account", want[1]}
			}
			check(t, "device confirmation page", pg.Body, want, tc.marked)
		})
	}
}

// startDevice starts the device flow for a public client and returns the
// user code.
func (e *env) startDevice(id string) string {
	e.t.Helper()
	resp, err := http.PostForm(e.issuer+"/oauth2/device_authorization", url.Values{"client_id": {id}, "scope": {"mcp:tools"}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var da struct {
		UserCode string `json:"user_code"`
	}
	if err := json.Unmarshal(b, &da); err != nil || resp.StatusCode != http.StatusOK || da.UserCode == "" {
		e.t.Fatalf("device authorization for %s = %d %s", id, resp.StatusCode, b)
	}
	return da.UserCode
}
