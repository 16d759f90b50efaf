package authority

import "github.com/signet-auth/signet/clients"

// GrantScope is the scope a client gets for the scope it asked (its
// default scopes when it asked none), or an invalid_scope *Error: the one
// rule every grant applies, for grants served by other packages.
func GrantScope(ent *clients.Entry, requested string) (string, error) {
	return grantScope(ent, requested)
}

// GrantAudience is the audience a client gets for the audience or RFC
// 8707 resources it asked (its default audience when none), or an
// *Error (invalid_target, invalid_request).
func GrantAudience(ent *clients.Entry, audience string, resources []string) ([]string, error) {
	return grantAudience(ent, audience, resources)
}
