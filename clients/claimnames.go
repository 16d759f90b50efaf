package clients

import "strings"

// reservedClaimNames are the claims Signet sets or reads, and the names a
// consumer could take for them. JWT claim names are case-sensitive (RFC
// 7519 §4), but a consumer that matches them without case, or that
// decodes into a case-insensitive struct as encoding/json does, would let
// "SCOPE" or "Sub" in an extra claim stand in for the real one. So no
// client extra claim and no user profile claim may equal one of these
// ignoring case.
var reservedClaimNames = []string{
	// RFC 7519 §4.1 registered claims.
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	// RFC 9068 §2.2, RFC 8693 §4, RFC 7800 §3.
	"client_id", "scope", "cnf", "act", "may_act",
	// OpenID Connect Core §2 and §3.1.3.6.
	"azp", "nonce", "auth_time", "at_hash", "c_hash", "acr", "amr", "sid",
	// The JOSE typ, which some libraries also look for among the claims.
	"typ",
	// The client instance a token was issued to (Signet's own).
	ClaimClientInstance,
	// RFC 7662 §2.2 introspection answer members.
	"active", "token_type", "username",
}

// userRecordClaimNames are set from a user's own fields (Email, Roles,
// Username). A user profile claim may not take them in any case. A client
// extra claim may use them exactly (a client-credentials token may carry
// roles; in a user's token the user's value wins) but not in another case,
// so that no token holds two claims whose names differ only in case.
var userRecordClaimNames = []string{"email", "email_verified", "roles", "preferred_username", "name", "updated_at"}

// ClaimNameProblem says why name may not be a client extra claim (profile
// false) or a user profile claim (profile true); "" when it may.
func ClaimNameProblem(name string, profile bool) string {
	for _, r := range reservedClaimNames {
		if strings.EqualFold(name, r) {
			return QuoteValue(name) + " is reserved: Signet sets or reads the claim " + r
		}
	}
	for _, r := range userRecordClaimNames {
		if !strings.EqualFold(name, r) {
			continue
		}
		if profile {
			return QuoteValue(name) + " is reserved: Signet sets the claim " + r + " from the user record"
		}
		if name != r {
			return QuoteValue(name) + " differs only in case from the claim " + r + ", which Signet sets"
		}
	}
	return ""
}
