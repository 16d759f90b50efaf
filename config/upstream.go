package config

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/upstream"
)

// Upstream is one entry of login.upstreams: an OpenID Connect provider
// users may sign in through (docs/login.md).
type Upstream struct {
	ID               string            `yaml:"id"`
	Name             string            `yaml:"name"`
	Issuer           string            `yaml:"issuer"`
	ClientID         string            `yaml:"client_id"`
	ClientSecretFile string            `yaml:"client_secret_file"`
	Scopes           []string          `yaml:"scopes"`
	Claims           map[string]string `yaml:"claims"`
	// Logout: when a Signet session begun here ends by RP-initiated
	// logout, the browser is sent through the provider's
	// end_session_endpoint too (default true; only when the provider
	// advertises one).
	Logout *bool `yaml:"logout"`
	// TrustAMR: an "mfa" in the provider's amr meets Signet's
	// second-factor requirement (default false: shown in amr, meets
	// nothing; docs/login.md).
	TrustAMR bool `yaml:"trust_amr"`
}

var upstreamID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// validateUpstreams checks login.upstreams and login.password_login.
func (c *Config) validateUpstreams(bad func(field, format string, args ...any)) {
	c.Login.upstreams = nil
	seen := map[string]bool{}
	for i, u := range c.Login.Upstreams {
		f := func(name string) string { return fmt.Sprintf("login.upstreams[%d].%s", i, name) }
		p := upstream.Provider{ID: u.ID, Name: u.Name, Issuer: u.Issuer, ClientID: u.ClientID, Scopes: u.Scopes, Claims: u.Claims,
			NoLogout: u.Logout != nil && !*u.Logout, TrustAMR: u.TrustAMR}
		switch {
		case !upstreamID.MatchString(u.ID):
			bad(f("id"), "%q: expected 1 to 32 lowercase letters, digits or dashes, such as corp (it is in the callback URL /login/upstream/ID/callback)", u.ID)
		case seen[u.ID]:
			bad(f("id"), "%q is declared twice: give each provider its own id", u.ID)
		}
		seen[u.ID] = true
		if u.Name == "" || len(u.Name) > 64 {
			bad(f("name"), "%q: set the button's text (1 to 64 characters), such as Okta: the page shows \"Sign in with NAME\"", u.Name)
		}
		if iu, err := url.Parse(u.Issuer); err != nil || iu.Host == "" || iu.RawQuery != "" || iu.Fragment != "" ||
			iu.Scheme != "https" && !(iu.Scheme == "http" && c.Outbound.parsed.AllowLoopback && outbound.IsLoopbackURL(u.Issuer)) {
			bad(f("issuer"), "%q: set the provider's https issuer URL, exactly as its ID tokens' iss (its /.well-known/openid-configuration is read from there); http only to a loopback provider of a loopback Signet", u.Issuer)
		}
		if u.ClientID == "" {
			bad(f("client_id"), "empty: register Signet at the provider as a confidential web client with the redirect URI %s/login/upstream/%s/callback and set its client id here", strings.TrimSuffix(c.Issuer, "/"), u.ID)
		}
		if u.ClientSecretFile == "" {
			bad(f("client_secret_file"), "empty: write the client secret the provider gave into a file readable only by Signet and set its path here")
		} else if b, err := os.ReadFile(u.ClientSecretFile); err != nil {
			bad(f("client_secret_file"), "%v: give the path of a file holding the client secret", err)
		} else if p.ClientSecret = strings.TrimSpace(string(b)); p.ClientSecret == "" {
			bad(f("client_secret_file"), "%s is empty: write the client secret into it", u.ClientSecretFile)
		}
		if len(u.Scopes) == 0 {
			p.Scopes = []string{"openid", "email", "profile"}
		} else if !slices.Contains(u.Scopes, "openid") {
			bad(f("scopes"), "%v: add openid (without it the provider sends no ID token)", u.Scopes)
		}
		for _, k := range slices.Sorted(maps.Keys(u.Claims)) {
			switch {
			case k != upstream.FieldEmail && k != upstream.FieldName && k != upstream.FieldRoles:
				bad(f("claims"), "%q: the user fields a claim may fill are email, name and roles", k)
			case u.Claims[k] == "":
				bad(f("claims"), "%s: name the provider's ID token claim that fills it, such as %s", k, map[string]string{"email": "email", "name": "name", "roles": "groups"}[k])
			}
		}
		c.Login.upstreams = append(c.Login.upstreams, p)
	}
	if !c.Login.PasswordLogin && len(c.Login.Upstreams) == 0 {
		bad("login.password_login", "false with no login.upstreams: nobody could sign in in a browser; add an upstream or set it to true")
	}
}

// UpstreamProviders are login.upstreams, validated, their secrets read.
func (c *Config) UpstreamProviders() []upstream.Provider { return c.Login.upstreams }
