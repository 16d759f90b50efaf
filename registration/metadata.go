package registration

import (
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/signet-auth/signet/clients"
)

// clientMetadata is the RFC 7591 §2 client metadata Signet reads, in a
// registration request and in a client ID metadata document. Members it
// does not know are ignored (RFC 7591 §2); logo_uri and client_uri too:
// the consent page shows no picture or link a client chose for itself.
type clientMetadata struct {
	ClientID                string          `json:"client_id"`
	RedirectURIs            []string        `json:"redirect_uris"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	ClientName              string          `json:"client_name"`
	Scope                   string          `json:"scope"`
	JWKS                    json.RawMessage `json:"jwks"`
	JWKSURI                 string          `json:"jwks_uri"`
	ApplicationType         string          `json:"application_type"`
}

// toClient turns metadata into a client the policy allows, or the RFC 7591
// §3.2.2 error saying why not. A metadata document (document true) has
// stricter rules: no private-use schemes, loopback port freedom only when
// it says application_type native, public or private_key_jwt with a
// jwks_uri.
func (s *Service) toClient(md clientMetadata, document bool) (clients.Client, *regError) {
	p := &s.cfg.Policy
	var cl clients.Client
	name := strings.TrimSpace(md.ClientName)
	if len(name) > 128 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return cl, badMetadata("client_name must be at most 128 characters on one line")
	}
	cl.ClientName = name
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return cl, badMetadata("response_types: only code is supported")
		}
	}
	cl.GrantTypes = md.GrantTypes
	if len(cl.GrantTypes) == 0 {
		cl.GrantTypes = []string{clients.GrantAuthorizationCode}
	}
	for _, g := range cl.GrantTypes {
		if !slices.Contains(p.GrantTypes, g) {
			return cl, badMetadata("grant_types: " + clients.QuoteValue(g) + " is not allowed for dynamically registered clients (allowed: " + strings.Join(p.GrantTypes, ", ") + ")")
		}
	}
	if slices.Contains(cl.GrantTypes, clients.GrantRefreshToken) && len(cl.GrantTypes) == 1 {
		return cl, badMetadata("grant_types: refresh_token needs authorization_code or the device grant")
	}

	method := md.TokenEndpointAuthMethod
	hasKeys := len(md.JWKS) > 0 || md.JWKSURI != ""
	if method == "" {
		// RFC 7591's default is client_secret_basic; a policy without it
		// gets the method the metadata points to.
		switch {
		case hasKeys:
			method = clients.AuthPrivateKeyJWT
		case slices.Contains(p.AuthMethods, clients.AuthSecretBasic):
			method = clients.AuthSecretBasic
		default:
			method = clients.AuthNone
		}
	}
	if !slices.Contains(p.AuthMethods, method) {
		return cl, badMetadata("token_endpoint_auth_method: " + clients.QuoteValue(method) + " is not allowed for dynamically registered clients (allowed: " + strings.Join(p.AuthMethods, ", ") + ")")
	}
	cl.AuthMethods = []string{method}
	switch method {
	case clients.AuthNone:
		cl.Public = true // PKCE required (clients.Client.RequiresPKCE)
		if hasKeys {
			return cl, badMetadata("jwks and jwks_uri are for private_key_jwt")
		}
	case clients.AuthPrivateKeyJWT:
		switch {
		case document && (md.JWKSURI == "" || len(md.JWKS) > 0):
			return cl, badMetadata("a metadata document's private_key_jwt client names its keys by jwks_uri")
		case !hasKeys:
			return cl, badMetadata("private_key_jwt needs jwks or jwks_uri")
		}
		cl.JWKS, cl.JWKSURI = md.JWKS, md.JWKSURI
	default:
		if document {
			return cl, badMetadata("a metadata document's client is public (none) or uses private_key_jwt")
		}
	}

	if len(md.RedirectURIs) == 0 && slices.Contains(cl.GrantTypes, clients.GrantAuthorizationCode) {
		return cl, badRedirect("redirect_uris: at least one is required for authorization_code")
	}
	native := false
	for _, u := range md.RedirectURIs {
		kind, problem := redirectKind(u)
		if problem == "" && kind == privateUse && (document || !p.PrivateUseSchemes) {
			problem = "private-use schemes are not allowed here"
		}
		if problem != "" {
			return cl, badRedirect("redirect_uris: " + clients.QuoteValue(u) + " " + problem)
		}
		native = native || kind != web
	}
	cl.RedirectURIs = md.RedirectURIs
	cl.ApplicationType = clients.AppWeb
	// Native: a loopback URI on 127.0.0.1 or [::1] matches on any port
	// (RFC 8252 §7.3), and a registration may use private-use schemes. A
	// document is published once, yet a native app (an MCP client on the
	// user's machine) listens on whatever loopback port is free when it
	// runs, so a document that says application_type native gets the
	// port freedom too; one that does not is matched exactly.
	if native && (!document || md.ApplicationType == clients.AppNative) {
		cl.ApplicationType = clients.AppNative
	}

	requested := strings.Fields(md.Scope)
	for _, sc := range requested {
		// Accepted, and granted only as far as the policy allows: the MCP
		// SDK sends the resource's scopes_supported here.
		if slices.Contains(p.Scopes, sc) && !slices.Contains(cl.Scopes, sc) {
			cl.Scopes = append(cl.Scopes, sc)
		}
	}
	if len(requested) == 0 {
		cl.Scopes = slices.Clone(p.DefaultScopes)
	}
	if cl.Scopes == nil {
		cl.Scopes = []string{}
	}
	cl.DefaultScopes = slices.Clone(cl.Scopes)
	cl.Audiences = slices.Clone(p.Audiences)
	cl.DefaultAudience = p.Audiences[0]
	return cl, nil
}

// Kinds of redirect URI.
const (
	web        = iota // https
	loopback          // http on a loopback address
	privateUse        // com.example.app:/cb
)

// redirectKind sorts a redirect URI a client registers itself and says
// what is wrong with it: https; http only to 127.0.0.1, [::1] or
// localhost (RFC 8252 §7.3); or a private-use scheme that is a reverse
// domain name (§7.1). clients validates the rest (fragments, ports, user
// information) when the client is stored.
func redirectKind(uri string) (int, string) {
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() {
		return 0, "is not an absolute URI"
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return 0, "has no host"
		}
		return web, ""
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return loopback, ""
		}
		return 0, "is not https: plain http is only for loopback (127.0.0.1, [::1])"
	}
	if !strings.Contains(u.Scheme, ".") || slices.Contains([]string{"javascript", "data", "file", "vbscript"}, u.Scheme) {
		return 0, "must be https, loopback http, or a private-use scheme such as com.example.app:/cb"
	}
	return privateUse, ""
}
