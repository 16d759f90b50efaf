// Package resource holds the rules for the audience of an access token:
// the RFC 8707 resource indicators a client names (at the authorization,
// device authorization and token endpoints) or Signet's audience
// parameter, what a client may ask for, and how a later grant (a code
// redemption, a refresh) narrows what an earlier one granted. Every
// endpoint and every grant, built in or served by another package
// (authority.Grant), asks here, so none of them can disagree about what a
// resource is or widen what was granted.
package resource

import (
	"net/url"
	"slices"
	"strings"
)

// Error codes of the refusals (RFC 6749 §5.2, RFC 8707 §2).
const (
	InvalidTarget  = "invalid_target"
	InvalidRequest = "invalid_request"
)

// Error is a refusal to be sent to the client as an OAuth error: Code is
// InvalidTarget or InvalidRequest, Description is in the RFC 6749 §5.2
// alphabet and never echoes the value.
type Error struct{ Code, Description string }

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func refuse(code, desc string) *Error { return &Error{Code: code, Description: desc} }

// MaxLen bounds a resource value: a client's audiences are at most 256
// characters (clients), so a longer value can never be granted.
const MaxLen = 2048

// Check reports whether v is a resource indicator (RFC 8707 §2): an
// absolute URI (RFC 3986 §4.3: a scheme, then the rest; a query is
// allowed) without a fragment. A URI is ASCII without spaces; http and
// https URIs need a host. It returns an *Error with InvalidTarget.
func Check(v string) error {
	if v == "" || len(v) > MaxLen {
		return refuse(InvalidTarget, "a resource must be an absolute URI of at most 2048 characters (RFC 8707 section 2)")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return refuse(InvalidTarget, "a resource must be an absolute URI (RFC 8707 section 2): spaces, control and non-ASCII characters must be percent-encoded")
		}
	}
	if strings.IndexByte(v, '#') >= 0 {
		return refuse(InvalidTarget, "a resource must not include a fragment (RFC 8707 section 2)")
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "" && u.Path == "") {
		return refuse(InvalidTarget, "a resource must be an absolute URI such as https://api.example.com (RFC 8707 section 2)")
	}
	if (u.Scheme == "https" || u.Scheme == "http") && u.Host == "" {
		return refuse(InvalidTarget, "an http or https resource must name a host (RFC 8707 section 2)")
	}
	return nil
}

// Requested is the audience a request names: its resource parameters
// (each one checked, repeats and empty values dropped) or its audience
// parameter (a name the client knows the audience by, not checked as a
// URI), never both; nil when it names none.
func Requested(audience string, resources []string) ([]string, error) {
	if audience != "" && slices.ContainsFunc(resources, func(r string) bool { return r != "" }) {
		return nil, refuse(InvalidRequest, "use audience or resource, not both")
	}
	if audience != "" {
		return []string{audience}, nil
	}
	var out []string
	for _, r := range resources {
		if r == "" || slices.Contains(out, r) {
			continue
		}
		if err := Check(r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Grant is the audience of a new grant (client_credentials, password, an
// authorization or device authorization request): what the request names,
// each value one of the client's audiences (allowed), or the client's
// default audience (def) when it names none.
func Grant(allowed []string, def, audience string, resources []string) ([]string, error) {
	want, err := Requested(audience, resources)
	if err != nil {
		return nil, err
	}
	if len(want) == 0 {
		return []string{def}, nil
	}
	for _, a := range want {
		if !slices.Contains(allowed, a) {
			return nil, refuse(InvalidTarget, "the requested audience is not allowed for this client")
		}
	}
	return want, nil
}

// Narrow is the audience of a token issued from an earlier grant (an
// authorization code, a device code, a refresh family; what names it in
// the refusals) that granted granted. want (from Requested) may only
// narrow it (RFC 8707 §2.2, RFC 6749 §6); none means all of it. Every
// value is granted again against the client's audiences now (allowed): one
// the client lost is dropped, or refused when asked for by name; nothing
// left is refused.
func Narrow(granted, want, allowed []string, what string) ([]string, error) {
	for _, a := range want {
		if !slices.Contains(granted, a) {
			return nil, refuse(InvalidTarget, "the requested audience was not granted to this "+what)
		}
	}
	named := len(want) > 0
	if !named {
		want = granted
	}
	var out []string
	for _, a := range want {
		switch {
		case slices.Contains(allowed, a):
			out = append(out, a)
		case named:
			return nil, refuse(InvalidTarget, "the requested audience is no longer allowed for this client")
		}
	}
	if len(out) == 0 {
		return nil, refuse(InvalidTarget, "no audience this "+what+" was granted is still allowed for this client")
	}
	return out, nil
}
