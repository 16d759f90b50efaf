package authority

import (
	"context"
	"slices"
	"strings"

	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/users"
)

// passwordGrantFactors applies the second-factor policy to the password
// grant, which proves the password only: a user who set up a second factor
// does not get tokens through it, and the admin scope, which needs a
// second factor unless Config.AdminScopePasswordOnly, is refused when the
// client named it and dropped when it came from the client's defaults.
func (s *Server) passwordGrantFactors(ctx context.Context, u *users.User, scope string, named []string) (string, *Error) {
	st, err := mfa.ReadStatus(ctx, s.cfg.Store, u.ID)
	if err != nil {
		return "", ServerError(err)
	}
	if st.TOTP {
		return "", errInvalidGrant("this user signs in with a second factor, which the password grant cannot ask for: use the authorization code flow")
	}
	if s.cfg.AdminScopePasswordOnly || !hasScope(scope, AdminScope) {
		return scope, nil
	}
	if slices.Contains(named, AdminScope) {
		return "", errInvalidScope("scope " + AdminScope + " needs a second factor, which the password grant cannot ask for: use the authorization code flow")
	}
	kept := slices.DeleteFunc(SplitScope(scope), func(s string) bool { return s == AdminScope })
	return strings.Join(kept, " "), nil
}
