package users

import (
	"slices"
	"strings"
)

// PrivilegedPrefix marks the scopes Signet itself serves (signet:admin
// today): a scope in this namespace is privileged. A client may hold one
// (an operator registered it so), but a token acting for a user carries it
// only when that user holds the role of the same name, so no client, by
// any grant, can lift an ordinary user into Signet's admin API.
const PrivilegedPrefix = "signet:"

// Privileged reports whether scope needs a role of the same name in a
// user's token.
func Privileged(scope string) bool { return strings.HasPrefix(scope, PrivilegedPrefix) }

// PermitScopes is the one rule every grant that issues a token for a user
// applies (password, authorization_code, refresh_token, and the token
// exchange, jwt-bearer and device grants when they come): it returns the
// scopes of want that u may hold, in order, and the first privileged scope
// it removed ("" when none). A privileged scope needs the role of the same
// name in u.Roles; a disabled user holds none. Callers refuse a scope the
// client asked for by name (invalid_scope) and drop one that came from
// defaults or from an earlier grant, and they call it again with the user
// as stored at each use, so a role taken away ends at the next refresh.
func PermitScopes(u *User, want []string) (kept []string, refused string) {
	kept = make([]string, 0, len(want))
	for _, s := range want {
		if Privileged(s) && (u.Disabled || !slices.Contains(u.Roles, s)) {
			if refused == "" {
				refused = s
			}
			continue
		}
		kept = append(kept, s)
	}
	return kept, refused
}
