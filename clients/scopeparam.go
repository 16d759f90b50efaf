package clients

import (
	"errors"
	"slices"
	"strings"
)

// ErrMalformedScope is the refusal of a scope parameter that is not RFC
// 6749 §3.3 syntax; its text is the invalid_scope description.
var ErrMalformedScope = errors.New("malformed scope: scope tokens are printable ASCII without double quote or backslash, separated by one space (RFC 6749 section 3.3)")

// ParseScope is the one parser of a scope parameter a client sends (RFC
// 6749 §3.3): scope = scope-token *( SP scope-token ), scope-token =
// 1*( %x21 / %x23-5B / %x5D-7E ). Only a single SP separates tokens: a
// TAB, a line break, a no-break or em space, two spaces, or a space at
// either end make the whole scope malformed (ErrMalformedScope) rather
// than being read as a separator, so Signet and whoever else reads the
// same string cannot disagree about which scopes it names. It returns the
// tokens in order without repeats; "" gives none.
func ParseScope(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for tok := range strings.SplitSeq(s, " ") {
		if !ValidScopeToken(tok) {
			return nil, ErrMalformedScope
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out, nil
}

// GrantScope checks a requested scope against the client's and returns
// the scope to grant; none asked means the default scopes. An error's text
// is the invalid_scope description.
func (e *Entry) GrantScope(requested string) (string, error) {
	if requested == "" {
		return e.DefaultScope, nil
	}
	toks, err := ParseScope(requested)
	if err != nil {
		return "", err
	}
	for _, t := range toks {
		if !slices.Contains(e.Record.Scopes, t) {
			return "", errors.New("scope " + t + " is not allowed for this client")
		}
	}
	return strings.Join(toks, " "), nil
}
