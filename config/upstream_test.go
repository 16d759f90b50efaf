package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestUpstreams_Errors: every problem of login.upstreams names its field
// (with the provider's index) and the fix, in one round; a good entry
// parses into a provider with its secret read from the file.
func TestUpstreams_Errors(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "corp-secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(yaml string) (Config, error) {
		path := filepath.Join(dir, "signet.yaml")
		if err := os.WriteFile(path, []byte("issuer: https://auth.example.com\n"+yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(Sources{File: path, Getenv: func(string) string { return "" }})
	}
	_, err := load(`login:
  upstreams:
    - id: Corp SSO
      issuer: http://sso.corp.example
      scopes: [email]
      claims: {email: email, admin: groups, roles: ""}
    - id: dup
      name: Dup
      issuer: https://a.example
      client_id: x
      client_secret_file: /nonexistent/secret
    - id: dup
      name: Dup
      issuer: https://a.example
      client_id: x
      client_secret_file: ` + secret + `
`)
	if err == nil {
		t.Fatal("Load accepted bad login.upstreams")
	}
	for _, want := range []string{
		`login.upstreams[0].id: "Corp SSO": expected 1 to 32 lowercase`,
		`login.upstreams[0].name: "": set the button's text`,
		`login.upstreams[0].issuer: "http://sso.corp.example": set the provider's https issuer URL`,
		`login.upstreams[0].client_id: empty: register Signet at the provider`,
		`login.upstreams[0].client_secret_file: empty`,
		`login.upstreams[0].scopes: [email]: add openid`,
		`login.upstreams[0].claims: "admin": the user fields a claim may fill are email, name and roles`,
		`login.upstreams[0].claims: roles: name the provider's ID token claim`,
		`login.upstreams[1].client_secret_file: open /nonexistent/secret`,
		`login.upstreams[2].id: "dup" is declared twice`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if _, err := load("login:\n  password_login: false\n"); err == nil || !strings.Contains(err.Error(), "login.password_login: false with no login.upstreams") {
		t.Errorf("password_login false alone: %v", err)
	}
	c, err := load(`login:
  password_login: false
  upstreams:
    - id: corp
      name: Corp SSO
      issuer: https://sso.corp.example
      client_id: signet
      client_secret_file: ` + secret + `
    - id: other
      name: Other
      issuer: https://other.example
      client_id: signet
      client_secret_file: ` + secret + `
      logout: false
`)
	if err != nil {
		t.Fatal(err)
	}
	p := c.UpstreamProviders()
	if len(p) != 2 || p[0].ClientSecret != "s3cret" || !slices.Equal(p[0].Scopes, []string{"openid", "email", "profile"}) || c.Login.PasswordLogin {
		t.Fatalf("providers = %+v, password_login %v", p, c.Login.PasswordLogin)
	}
	// logout defaults to true (the provider's end_session_endpoint is used
	// when it has one); false keeps the provider's session.
	if p[0].NoLogout || !p[1].NoLogout {
		t.Fatalf("NoLogout = %v, %v: want false by default and true for logout: false", p[0].NoLogout, p[1].NoLogout)
	}
}

// TestUpstreams_TrustAMR: trust_amr is false unless set (a provider's
// "mfa" meets no second-factor requirement by default), true carries
// into the provider, and a value that is not a boolean names its field.
func TestUpstreams_TrustAMR(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "corp-secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(trust string) (Config, error) {
		path := filepath.Join(dir, "signet.yaml")
		y := "issuer: https://auth.example.com\nlogin:\n  upstreams:\n" +
			"    - {id: corp, name: Corp, issuer: https://sso.corp.example, client_id: signet, client_secret_file: " + secret + "}\n" +
			"    - {id: other, name: Other, issuer: https://other.example, client_id: signet, client_secret_file: " + secret + trust + "}\n"
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(Sources{File: path, Getenv: func(string) string { return "" }})
	}
	c, err := load(", trust_amr: true")
	if err != nil {
		t.Fatal(err)
	}
	if p := c.UpstreamProviders(); len(p) != 2 || p[0].TrustAMR || !p[1].TrustAMR {
		t.Fatalf("providers = %+v: want trust_amr false by default, true where set", p)
	}
	for _, bad := range []string{", trust_amr: maybe", ", trust_amr: [mfa]", ", trust_amrs: true"} {
		_, err := load(bad)
		if err == nil || !strings.Contains(err.Error(), "line 5: ") || !strings.Contains(err.Error(), "login.upstreams[1].trust_amr") {
			t.Errorf("%s: err = %v, want one naming trust_amr on line 5", bad, err)
		}
	}
}
