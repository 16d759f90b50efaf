package authority

import (
	"slices"
	"strings"

	"github.com/signet-auth/signet/clients"
)

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

// splitScope splits a scope string Signet wrote itself (a granted scope
// in a refresh family, a token's scope claim): tokens parseScope or client
// validation accepted, joined by single spaces. Never use it on a request.
func splitScope(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}
