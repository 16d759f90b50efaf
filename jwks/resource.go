package jwks

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// WellKnownProtectedResource is the well-known path of RFC 9728 §3.
const WellKnownProtectedResource = "/.well-known/oauth-protected-resource"

// ResourceMetadata is an OAuth 2.0 Protected Resource Metadata document
// (RFC 9728 §2): what a client reads to learn which authorization server
// issues tokens for a resource and how to present them.
type ResourceMetadata struct {
	// Resource is the resource's identifier: the https URL a client sends
	// as RFC 8707 `resource` and finds as the token's aud.
	Resource string `json:"resource"`
	// AuthorizationServers are the issuers whose tokens the resource takes.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// ScopesSupported are the scopes a client may ask for to use the
	// resource. MCP clients ask for exactly these when the resource's
	// challenge names no scope.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported: how the token may be sent. The middleware
	// reads the Authorization header only, so this is always ["header"].
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	// DPoPSigningAlgValuesSupported: the proof algorithms taken, set when
	// the verifier was built WithDPoP (RFC 9728 §2, RFC 9449).
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	// ResourceName is a name for people, optional.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is a URL of documentation for developers,
	// optional.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
}

// ProtectedResource is one resource server described by RFC 9728: it
// serves its metadata document (it is an http.Handler: mount it at
// MetadataPath), and with WithProtectedResource the middleware's 401 and
// 403 answers point clients at that document and accept only tokens whose
// aud names the resource.
type ProtectedResource struct {
	v           *Verifier
	md          ResourceMetadata
	body        []byte
	metadataURL string
	path        string
}

// NewProtectedResource describes the resource md.Resource, whose tokens v
// verifies. md.Resource is canonicalised (lower-case scheme and host, no
// default port, no trailing slash after the host) and must be https (http
// on loopback, or anywhere with WithInsecureHTTP), without fragment, query
// or user information; v must accept it as an audience (WithAudience).
// AuthorizationServers defaults to v's issuer. BearerMethodsSupported and
// DPoPSigningAlgValuesSupported are set from the middleware: whatever md
// says of them is replaced.
func NewProtectedResource(v *Verifier, md ResourceMetadata) (*ProtectedResource, error) {
	if v == nil {
		return nil, errors.New("jwks: protected resource: nil verifier")
	}
	res, err := canonicalResource(md.Resource, v.plainHTTP)
	if err != nil {
		return nil, fmt.Errorf("jwks: protected resource: %w", err)
	}
	if !slices.Contains(v.audiences, res) {
		return nil, fmt.Errorf("jwks: protected resource %q: the verifier does not accept it as an audience: add jwks.WithAudience(%q)", res, res)
	}
	md.Resource = res
	md.AuthorizationServers = slices.Clone(md.AuthorizationServers)
	if len(md.AuthorizationServers) == 0 {
		md.AuthorizationServers = []string{v.issuer}
	}
	for _, as := range md.AuthorizationServers {
		if err := checkURL(as, v.plainHTTP); err != nil {
			return nil, fmt.Errorf("jwks: protected resource: authorization server: %w", err)
		}
	}
	if md.ResourceDocumentation != "" {
		if err := checkURL(md.ResourceDocumentation, true); err != nil {
			return nil, fmt.Errorf("jwks: protected resource: resource_documentation: %w", err)
		}
	}
	md.ScopesSupported = slices.Clone(md.ScopesSupported)
	for _, s := range md.ScopesSupported {
		if s == "" || quoteSafe(s) != s || strings.Contains(s, " ") {
			return nil, fmt.Errorf("jwks: protected resource: scope %q: want printable ASCII without space, quote or backslash (RFC 6749 §3.3)", s)
		}
	}
	md.BearerMethodsSupported = []string{"header"}
	md.DPoPSigningAlgValuesSupported = nil
	if v.dpop != nil {
		md.DPoPSigningAlgValuesSupported = strings.Fields(v.dpop.Algorithms())
	}
	body, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("jwks: protected resource: %w", err)
	}
	u, _ := url.Parse(res) // parsed by canonicalResource
	path := WellKnownProtectedResource + u.EscapedPath()
	return &ProtectedResource{v: v, md: md, body: append(body, '\n'),
		metadataURL: u.Scheme + "://" + u.Host + path, path: path}, nil
}

// canonicalResource checks an RFC 8707 resource URI and returns it with
// scheme and host in lower case, without the scheme's default port and
// without the slash of an empty path, so that the value a client copies
// from the metadata is the aud the middleware compares byte for byte.
func canonicalResource(raw string, plainHTTP bool) (string, error) {
	if raw == "" {
		return "", errors.New("resource is empty: set ResourceMetadata.Resource to the URL clients use, e.g. https://mcp.example.com/mcp")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("resource %q: %w", raw, err)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") || u.RawQuery != "" || u.ForceQuery || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("resource %q: want scheme://host[:port][/path], without fragment, query or user information (RFC 8707 §2, RFC 9728 §1.2)", raw)
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			// A client would send it as written; the metadata path and
			// the mux would see it cleaned: two names for one resource.
			return "", fmt.Errorf("resource %q: want a path without . or .. segments", raw)
		}
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		u.Host = u.Hostname()
		if strings.Contains(u.Host, ":") {
			u.Host = "[" + u.Host + "]"
		}
	} else if port != "" {
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return "", fmt.Errorf("resource %q: %w", raw, err)
		}
	}
	if u.Path == "/" {
		u.Path, u.RawPath = "", ""
	}
	s := u.String()
	if err := checkURL(s, plainHTTP); err != nil {
		return "", fmt.Errorf("resource: %w", err)
	}
	return s, nil
}

// Resource is the canonical resource URI: the aud the middleware wants.
func (p *ProtectedResource) Resource() string { return p.md.Resource }

// Metadata returns the document served.
func (p *ProtectedResource) Metadata() ResourceMetadata {
	md := p.md
	md.AuthorizationServers = slices.Clone(md.AuthorizationServers)
	md.ScopesSupported = slices.Clone(md.ScopesSupported)
	md.BearerMethodsSupported = slices.Clone(md.BearerMethodsSupported)
	md.DPoPSigningAlgValuesSupported = slices.Clone(md.DPoPSigningAlgValuesSupported)
	return md
}

// MetadataPath is where the document belongs on the resource's host (RFC
// 9728 §3.1): the well-known path, followed by the resource's path when it
// has one ("/.well-known/oauth-protected-resource/mcp" for
// https://mcp.example.com/mcp). Clients that predate that rule look only
// at WellKnownProtectedResource: a host with a single resource can mount
// the handler there too.
func (p *ProtectedResource) MetadataPath() string { return p.path }

// MetadataURL is the document's URL, sent as resource_metadata in the
// middleware's challenges (RFC 9728 §5.1).
func (p *ProtectedResource) MetadataURL() string { return p.metadataURL }

// ServeHTTP answers GET and HEAD with the metadata document, on whatever
// path it is mounted at. It is public, so any origin may read it (a
// browser-based client fetches it across origins), and OPTIONS answers the
// preflight of a fetch with headers (MCP clients send
// MCP-Protocol-Version).
func (p *ProtectedResource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method == http.MethodOptions {
		h.Set("Allow", "GET, HEAD, OPTIONS")
		if r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, HEAD")
			h.Set("Access-Control-Allow-Headers", "*")
			h.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_ = json.NewEncoder(w).Encode(ErrorBody{Error: "invalid_request", ErrorDescription: "use GET"})
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	_, _ = w.Write(p.body)
}

// WithProtectedResource makes the middleware act for p (built on the same
// verifier: NewAuthenticator panics otherwise): 401 and 403 answers carry
// resource_metadata="<p.MetadataURL()>" in each challenge, a 401 names
// the scopes of RequireScopes so a client knows what to ask for, and a
// token is accepted only if its aud names p.Resource(), whatever other
// audiences the verifier accepts.
func WithProtectedResource(p *ProtectedResource) MiddlewareOption {
	return func(a *Authenticator) { a.resource = p }
}
