package authority

import (
	"encoding/json"
	"slices"

	"github.com/signet-auth/signet/users"
)

// userClaims is the JSON (object members, no braces) a user adds to an
// access token with the given scope.
func userClaims(rec *users.Record, scope string) ([]byte, error) {
	m := map[string]any{}
	scopes := SplitScope(scope)
	if len(rec.Roles) > 0 {
		m["roles"] = rec.Roles
	}
	if rec.Email != "" && slices.Contains(scopes, "email") {
		m["email"] = rec.Email
		m["email_verified"] = rec.EmailVerified
	}
	if slices.Contains(scopes, "profile") {
		m["preferred_username"] = rec.Username
		if rec.Name != "" {
			m["name"] = rec.Name
		}
		for k, v := range rec.Claims {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return b[1 : len(b)-1], nil
}
