package clients

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// Application types (OIDC Dynamic Client Registration §2).
const (
	AppWeb    = "web"
	AppNative = "native"
)

// maxRedirectURIs bounds the registered URIs of one client.
const maxRedirectURIs = 32

// RequiresPKCE reports whether the client must send a code_challenge:
// public clients always, others unless RequirePKCE is set to false.
func (cl *Client) RequiresPKCE() bool {
	return cl.Public || cl.RequirePKCE == nil || *cl.RequirePKCE
}

// IsNative reports whether the client is a native application.
func (cl *Client) IsNative() bool { return cl.ApplicationType == AppNative }

// RedirectAllowed reports whether uri is one of the client's redirect URIs,
// compared as an exact string. A native client's registered loopback URI
// (http://127.0.0.1/… or http://[::1]/…) also matches the same URI on any
// port (RFC 8252 §7.3); nothing else is normalised.
func (cl *Client) RedirectAllowed(uri string) bool {
	if slices.Contains(cl.RedirectURIs, uri) {
		return true
	}
	if !cl.IsNative() {
		return false
	}
	want, ok := withoutLoopbackPort(uri)
	if !ok {
		return false
	}
	for _, r := range cl.RedirectURIs {
		if reg, ok := withoutLoopbackPort(r); ok && reg == want {
			return true
		}
	}
	return false
}

// WebOrigin reports whether origin (an Origin header: scheme://host[:port])
// is the origin of one of the client's http or https redirect URIs: the
// pages of the client itself.
func (cl *Client) WebOrigin(origin string) bool {
	if origin == "" {
		return false
	}
	for _, r := range cl.RedirectURIs {
		if u, err := url.Parse(r); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Scheme+"://"+u.Host == origin {
			return true
		}
	}
	return false
}

// PostLogoutRedirectAllowed reports whether uri is registered exactly.
func (cl *Client) PostLogoutRedirectAllowed(uri string) bool {
	return slices.Contains(cl.PostLogoutRedirectURIs, uri)
}

// withoutLoopbackPort returns a loopback http URI with its port removed,
// and false for anything that is not exactly such a URI.
func withoutLoopbackPort(uri string) (string, bool) {
	rest, ok := strings.CutPrefix(uri, "http://")
	if !ok {
		return "", false
	}
	var host, tail string
	switch {
	case strings.HasPrefix(rest, "127.0.0.1"):
		host, tail = "127.0.0.1", rest[len("127.0.0.1"):]
	case strings.HasPrefix(rest, "[::1]"):
		host, tail = "[::1]", rest[len("[::1]"):]
	default:
		return "", false
	}
	if strings.HasPrefix(tail, ":") {
		i := 1
		for i < len(tail) && tail[i] >= '0' && tail[i] <= '9' {
			i++
		}
		if !validPort(tail[1:i]) {
			return "", false // port 0, 99999, "", 08080: not a port a native app listens on
		}
		tail = tail[i:]
	}
	if tail != "" && tail[0] != '/' && tail[0] != '?' {
		return "", false // "127.0.0.1.evil.example", "127.0.0.1@evil"
	}
	return host + tail, true
}

// validPort reports whether p is a TCP port as a URI should write it: 1 to
// 65535 in decimal, without leading zeros. Every port Signet reads from a
// redirect URI, registered or requested, goes through it.
func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// portOf returns what follows the port colon of a URI's host[:port], and
// whether there is such a colon.
func portOf(hostport string) (string, bool) {
	if rest, ok := strings.CutPrefix(hostport, "["); ok {
		_, after, _ := strings.Cut(rest, "]")
		return strings.CutPrefix(after, ":")
	}
	_, port, ok := strings.Cut(hostport, ":")
	return port, ok
}

// validateRedirect checks one registered URI: absolute, no fragment, no
// user info; https, or http only for loopback (native) hosts, or a
// private-use scheme (native apps, RFC 8252 §7.1).
func validateRedirect(uri string, native bool) string {
	if uri == "" || len(uri) > 2000 {
		return "must be 1 to 2000 characters"
	}
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() {
		return "must be an absolute URI"
	}
	if u.Fragment != "" || strings.Contains(uri, "#") {
		return "must not have a fragment (RFC 6749 §3.1.2)"
	}
	if u.User != nil {
		return "must not have user information"
	}
	// url.Parse takes any digits after the colon ("host:", ":0", ":99999").
	if port, ok := portOf(u.Host); ok && !validPort(port) {
		return "must have a port from 1 to 65535 (or none)"
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] <= 0x20 || uri[i] >= 0x7f {
			return "must be printable ASCII without spaces"
		}
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return "must have a host"
		}
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
		if !loopback {
			return "http is only for loopback addresses; use https"
		}
	case "javascript", "data", "file", "vbscript":
		return "scheme " + u.Scheme + " is not allowed"
	default:
		if !native {
			return "a private-use scheme is only for native clients (application_type native)"
		}
		if !strings.Contains(u.Scheme, ".") {
			return "a private-use scheme must be a reverse domain name such as com.example.app (RFC 8252 §7.1)"
		}
	}
	return ""
}

// validateLogin checks the browser-login fields of a client.
func (c *Registry) validateLogin(cl *Client, bad func(field, problem string)) {
	native := false
	switch cl.ApplicationType {
	case "", AppWeb:
	case AppNative:
		native = true
	default:
		bad("application_type", QuoteValue(cl.ApplicationType)+" must be web or native")
	}
	for _, f := range []struct {
		name string
		uris []string
	}{{"redirect_uris", cl.RedirectURIs}, {"post_logout_redirect_uris", cl.PostLogoutRedirectURIs}} {
		if len(f.uris) > maxRedirectURIs {
			bad(f.name, fmt.Sprintf("at most %d URIs", maxRedirectURIs))
		}
		for _, u := range f.uris {
			if p := validateRedirect(u, native); p != "" {
				bad(f.name, QuoteValue(u)+" "+p)
			}
		}
		if hasDup(f.uris) {
			bad(f.name, "duplicate value")
		}
	}
	code := slices.Contains(cl.GrantTypes, GrantAuthorizationCode)
	if code && len(cl.RedirectURIs) == 0 {
		bad("redirect_uris", "authorization_code needs at least one redirect URI")
	}
	if cl.Public {
		if len(cl.AuthMethods) != 1 || cl.AuthMethods[0] != AuthNone {
			bad("token_endpoint_auth_methods", "a public client authenticates with none only")
		}
		for _, g := range cl.GrantTypes {
			if g != GrantAuthorizationCode && g != GrantRefreshToken && g != GrantDeviceCode {
				bad("grant_types", fmt.Sprintf("a public client may use authorization_code, %s and refresh_token only, not %s", GrantDeviceCode, g))
			}
		}
		if cl.RequirePKCE != nil && !*cl.RequirePKCE {
			bad("require_pkce", "a public client must use PKCE")
		}
		if slices.Contains(cl.Scopes, AdminScope) {
			bad("scopes", "a public client cannot hold "+AdminScope)
		}
	} else if slices.Contains(cl.AuthMethods, AuthNone) {
		bad("token_endpoint_auth_methods", "none is for public clients (public: true)")
	}
	if len(cl.ClientName) > 128 || strings.ContainsAny(cl.ClientName, "\r\n\x00") {
		bad("client_name", "must be at most 128 characters on one line")
	}
	if a := cl.IDTokenSignedResponseAlg; a != "" && !slices.Contains(c.algs, a) {
		bad("id_token_signed_response_alg", QuoteValue(a)+" is not a live algorithm (live: "+strings.Join(c.algs, ", ")+")")
	}
}
