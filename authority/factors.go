package authority

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/users"
)

// FactorDemand is what the second-factor requirement asks of u now: the
// configured policy (Config.FactorPolicy, where "admins" are the users
// holding the admin role) and the operator's per-user requirement. The
// login pages and the password grant both ask it, so they apply one rule.
func (s *Server) FactorDemand(ctx context.Context, u *users.User) (mfa.Demand, error) {
	return s.cfg.FactorPolicy.Evaluate(ctx, s.cfg.Store, factorSubject(u), s.cfg.Now())
}

// FactorStanding is FactorDemand as an operator reads it (the admin API):
// it never starts a user's grace period, so Due is zero for a user the
// policy has not yet applied to.
func (s *Server) FactorStanding(ctx context.Context, u *users.User) (mfa.Demand, error) {
	return s.cfg.FactorPolicy.Peek(ctx, s.cfg.Store, factorSubject(u))
}

// FactorRequired reports whether a second factor is required of u, by the
// policy or the operator, without reading the store: the sign-in path
// skips FactorDemand's read for the users it does not concern.
func (s *Server) FactorRequired(u *users.User) bool {
	return s.cfg.FactorPolicy.Applies(factorSubject(u))
}

func factorSubject(u *users.User) mfa.Subject {
	_, refused := users.PermitScopes(u, []string{AdminScope})
	return mfa.Subject{UserID: u.ID, Admin: refused == "", Required: u.RequireSecondFactor, RequiredSince: u.RequireSecondFactorSince}
}

// passwordGrantFactors applies the second-factor policy to the password
// grant, which proves the password only: a user who set up a second factor
// does not get tokens through it, nor does a user a second factor is
// required of once their grace period is over; the admin scope, which
// needs a second factor unless Config.AdminScopePasswordOnly, is refused
// when the client named it and dropped when it came from the client's
// defaults.
func (s *Server) passwordGrantFactors(ctx context.Context, u *users.User, scope string, named []string) (string, *Error) {
	d, err := s.FactorDemand(ctx, u)
	if err != nil {
		return "", ServerError(err)
	}
	if d.Enrolled(true) {
		return "", errInvalidGrant("this user signs in with a second factor, which the password grant cannot ask for: use the authorization code flow")
	}
	if d.MustEnrol(s.cfg.Now(), true) {
		return "", errInvalidGrant("a second factor is required of this user and the time to set one up ended at " + d.Due.UTC().Format(time.RFC3339) +
			": the user sets one up at " + strings.TrimSuffix(s.cfg.Issuer, "/") + "/account, then signs in with the authorization code flow")
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
