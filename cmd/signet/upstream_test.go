package main

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/users"
)

// TestServe_UpstreamSignIn: signet serve with login.upstreams naming
// another signet serve signs an app's user in through it, twice, as one
// Signet user (the wiring of config, serve, login and upstream).
func TestServe_UpstreamSignIn(t *testing.T) {
	upPort, downPort := freePort(t), freePort(t)
	// Two host names: a browser's cookies are per host, not per port.
	upIssuer, downIssuer := fmt.Sprintf("http://localhost:%d", upPort), fmt.Sprintf("http://127.0.0.1:%d", downPort)
	callback := downIssuer + "/login/upstream/corp/callback"
	up, _ := startMain(t, testConfig(t, func(c *config.Config) {
		c.HTTP.Addr, c.Issuer = fmt.Sprintf("127.0.0.1:%d", upPort), upIssuer
	}), nil)
	if _, err := up.Server.Users().Create(t.Context(), users.NewUser{Username: "carol", Password: "carol's long password", Email: "carol@corp.example"}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := up.Server.Clients().Create(t.Context(), clients.Client{ID: "corp", GrantTypes: []string{clients.GrantAuthorizationCode},
		Scopes: []string{"openid", "email", "profile"}, Audiences: []string{"api"}, RedirectURIs: []string{callback}, FirstParty: true})
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "corp-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	down, _ := startMain(t, testConfig(t, func(c *config.Config) {
		c.HTTP.Addr, c.Issuer = fmt.Sprintf("127.0.0.1:%d", downPort), downIssuer
		c.Login.PasswordLogin = false
		c.Login.Upstreams = []config.Upstream{{ID: "corp", Name: "Corp SSO", Issuer: upIssuer, ClientID: "corp", ClientSecretFile: secretFile,
			Claims: map[string]string{"email": "email"}}}
	}), nil)
	if _, _, err := down.Server.Clients().Create(t.Context(), clients.Client{ID: "app", GrantTypes: []string{clients.GrantAuthorizationCode},
		Scopes: []string{"openid", "email"}, Audiences: []string{"api"}, RedirectURIs: []string{"https://app.example/cb"}, FirstParty: true}); err != nil {
		t.Fatal(err)
	}

	formRE := regexp.MustCompile(`(?s)<form method="post" action="([^"]+)"[^>]*>(.*?)</form>`)
	hiddenRE := regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	signIn := func() {
		jar, _ := cookiejar.New(nil)
		b := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		do := func(method, u string, form url.Values) (int, string, string) {
			t.Helper()
			req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
			if form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := b.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			loc := resp.Header.Get("Location")
			if m := regexp.MustCompile(`<a class="button" href="([^"]+)">`).FindStringSubmatch(string(body)); loc == "" && m != nil {
				loc = html.UnescapeString(m[1])
			}
			return resp.StatusCode, string(body), loc
		}
		submit := func(base, body string, extra url.Values) (int, string, string) {
			t.Helper()
			m := formRE.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("no form:\n%s", body)
			}
			v := url.Values{}
			for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
				v.Set(h[1], html.UnescapeString(h[2]))
			}
			for k, x := range extra {
				v[k] = x
			}
			return do(http.MethodPost, base+html.UnescapeString(m[1]), v)
		}
		_, body, _ := do(http.MethodGet, downIssuer+"/oauth2/authorize?"+url.Values{"response_type": {"code"}, "client_id": {"app"},
			"redirect_uri": {"https://app.example/cb"}, "scope": {"openid email"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
			"code_challenge_method": {"S256"}}.Encode(), nil)
		if !strings.Contains(body, "Sign in with Corp SSO") || strings.Contains(body, `name="password"`) {
			t.Fatalf("down's login page: want the button and no password form:\n%s", body)
		}
		_, _, loc := submit(downIssuer, body, nil)
		if !strings.HasPrefix(loc, upIssuer+"/oauth2/authorize?") {
			t.Fatalf("button sends to %q", loc)
		}
		_, body, _ = do(http.MethodGet, loc, nil)
		_, _, loc = submit(upIssuer, body, url.Values{"username": {"carol"}, "password": {"carol's long password"}})
		if !strings.HasPrefix(loc, callback+"?") {
			t.Fatalf("upstream sends to %q", loc)
		}
		status, body, loc := do(http.MethodGet, loc, nil)
		if u, _ := url.Parse(loc); u == nil || !strings.HasPrefix(loc, "https://app.example/cb?") || u.Query().Get("code") == "" {
			t.Fatalf("callback = %d to %q:\n%s", status, loc, body)
		}
	}
	signIn()
	signIn()
	list, err := down.Server.Users().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Email != "carol@corp.example" || !strings.HasPrefix(list[0].Username, "corp-") {
		t.Fatalf("down's users after two sign-ins = %+v, want one linked user", list)
	}
}
