//go:build apache

package main

import (
	"fmt"
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
)

// TestApache_BackchannelLogout (issue 21, what must be shown): a relying
// party nobody here wrote receives Signet's logout token. Apache httpd with
// mod_auth_openidc (Debian's apache2-bin and libapache2-mod-auth-openidc)
// signs a user in through Signet's hosted login; Signet ends the user's
// session (force logout), POSTs the logout token to mod_auth_openidc's
// back-channel endpoint (its redirect URI with ?logout=backchannel), which
// verifies it and ends its own session: the protected page sends the
// browser back to Signet.
func TestApache_BackchannelLogout(t *testing.T) {
	httpd, err := exec.LookPath("apache2")
	if err != nil {
		httpd = "/usr/sbin/apache2"
	}
	module := "/usr/lib/apache2/modules/mod_auth_openidc.so"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("mod_auth_openidc is not installed (apt-get install apache2-bin libapache2-mod-auth-openidc): %v", err)
	}
	f := newBCFixtureTuned(t, fastBackoff)
	apacheAddr := freeAddr(t)
	app := "http://" + apacheAddr
	redirect := app + "/protected/redirect_uri"
	cl := clients.Client{ID: "apache", FirstParty: true, GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid"},
		Audiences: []string{"api"}, RedirectURIs: []string{redirect}, BackchannelLogoutURI: redirect + "?logout=backchannel",
		BackchannelLogoutSessionRequired: true, AuthMethods: []string{clients.AuthSecretBasic}}
	_, secret, err := f.m.Server.Clients().Create(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "signet-apache-") // readable by the user httpd drops to
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	www := filepath.Join(dir, "www", "protected")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("signed in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	conf := fmt.Sprintf(`ServerRoot /etc/apache2
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule auth_openidc_module %[1]s
Listen %[2]s
ServerName %[2]s
PidFile %[3]s/httpd.pid
ErrorLog %[3]s/error.log
LogLevel warn auth_openidc:debug
User www-data
Group www-data
DocumentRoot %[3]s/www
DirectoryIndex index.html
Mutex file:%[3]s default
OIDCProviderMetadataURL %[4]s/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret %[5]s
OIDCRedirectURI %[6]s
OIDCCryptoPassphrase a-passphrase-for-the-test-only
OIDCScope "openid"
OIDCPKCEMethod S256
OIDCSessionType server-cache
<Directory %[3]s/www>
  Require all granted
</Directory>
<Location /protected>
  AuthType openid-connect
  Require valid-user
</Location>
`, module, apacheAddr, dir, f.base, secret, redirect)
	confPath := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(httpd, "-f", confPath, "-DFOREGROUND")
	cmd.Env = append(os.Environ(), "APACHE_RUN_DIR="+dir, "APACHE_LOCK_DIR="+dir)
	out := &signettest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("httpd output:\n%s\nerror.log (last 6000 bytes):\n%s", out, tail(string(log), 6000))
		}
	})
	b := newBCBrowser(t, f.base)
	var status int
	var loc, body string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, app+"/protected/", nil)
		req.Header.Set("Accept", "text/html")
		resp, err := b.c.Do(req)
		if err == nil {
			resp.Body.Close()
			status, loc = resp.StatusCode, resp.Header.Get("Location")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("httpd did not start: %v\n%s", err, out)
		}
	}
	if status != http.StatusFound || !strings.HasPrefix(loc, f.base+"/oauth2/authorize?") {
		t.Fatalf("protected page before sign-in: %d %s", status, loc)
	}
	f.user(t, "alice")
	_, _, body = b.get(loc)
	_, _, body = b.submit(body, map[string][]string{"username": {"alice"}, "password": {"a long enough password"}})
	m := regexp.MustCompile(`url=([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no way back to the application:\n%s", body)
	}
	back := html.UnescapeString(m[1])
	if !strings.HasPrefix(back, redirect+"?") {
		t.Fatalf("back to %s, want %s", back, redirect)
	}
	status, loc, _ = b.get(back)
	if status != http.StatusFound {
		t.Fatalf("mod_auth_openidc's redirect URI: %d %s", status, loc)
	}
	if status, _, body = b.get(app + "/protected/"); status != http.StatusOK || !strings.Contains(body, "signed in") {
		t.Fatalf("protected page after sign-in: %d %s", status, body)
	}

	// Signet ends the session; mod_auth_openidc is told and ends its own.
	var alice string
	us, _ := f.m.Server.Users().List(t.Context())
	for _, u := range us {
		if u.Username == "alice" {
			alice = u.ID
		}
	}
	adminCall(t, f.base, f.admin, http.MethodPost, "/admin/users/"+alice+"/logout", "{}")
	assertOutboxEmpty(t, f.m)
	if mb := metricsBody(t, f.base); !strings.Contains(mb, "signet_backchannel_logout_sent_total 1\n") {
		t.Fatalf("mod_auth_openidc did not accept the logout token:\n%s", grepLines(mb, "signet_backchannel"))
	}
	status, loc, _ = b.get(app + "/protected/")
	if status != http.StatusFound || !strings.HasPrefix(loc, f.base+"/oauth2/authorize?") {
		t.Errorf("protected page after the back-channel logout: %d %s, want a redirect to sign in again", status, loc)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	var bc []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "backchannel") {
			bc = append(bc, l)
		}
	}
	t.Logf("mod_auth_openidc on the back-channel request:\n%s", strings.Join(bc, "\n"))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
