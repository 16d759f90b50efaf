package authority

import "github.com/signet-auth/signet/clients"

// GrantScope is grantScope, the scope rule of every grant, for grants
// served by other packages (Config.Grants).
func GrantScope(ent *clients.Entry, requested string) (string, error) {
	return grantScope(ent, requested)
}

// GrantAudience is grantAudience, the audience and RFC 8707 resource rule
// (resource.Grant) with its refusals as RFC 6749 §5.2 answers.
func GrantAudience(ent *clients.Entry, audience string, resources []string) ([]string, error) {
	return grantAudience(ent, &tokenParams{audience: audience, resources: resources})
}
