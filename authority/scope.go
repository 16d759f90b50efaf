package authority

import (
	"slices"
	"strings"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/users"
)

// userScope applies the privileged-scope rule (users.PermitScopes) to the
// scope a grant is about to give u: a privileged scope the client named in
// this request is refused with invalid_scope; one that came from the
// client's defaults, a code or a refresh family is dropped.
func userScope(u *users.User, scope string, named []string) (string, *Error) {
	kept, refused := users.PermitScopes(u, SplitScope(scope))
	if refused == "" {
		return scope, nil
	}
	for _, n := range named {
		if !slices.Contains(kept, n) && users.Privileged(n) {
			return "", errInvalidScope("scope " + n + " needs the user to hold the role " + n)
		}
	}
	return strings.Join(kept, " "), nil
}

// errMalformedScope is the answer to a scope parameter that is not RFC
// 6749 §3.3 syntax.
const errMalformedScope = "malformed scope: scope tokens are printable ASCII without double quote or backslash, separated by one space (RFC 6749 section 3.3)"

// parseScope is the one parser of a scope parameter a client sends (RFC
// 6749 §3.3): scope = scope-token *( SP scope-token ), scope-token =
// 1*( %x21 / %x23-5B / %x5D-7E ). Only a single SP separates tokens: a
// TAB, a line break, a no-break or em space, two spaces, or a space at
// either end make the whole scope malformed rather than being read as a
// separator, so Signet and whoever else reads the same string cannot
// disagree about which scopes it names. It returns the tokens in order
// without repeats; "" gives none.
func parseScope(s string) ([]string, *Error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for tok := range strings.SplitSeq(s, " ") {
		if !clients.ValidScopeToken(tok) {
			return nil, errInvalidScope(errMalformedScope)
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out, nil
}

// SplitScope splits a scope string Signet wrote itself (a granted scope
// in a refresh family, a token's scope claim): tokens parseScope or client
// validation accepted, joined by single spaces. Never use it on a request.
func SplitScope(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}
