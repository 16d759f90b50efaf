package authority

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// UserScope applies the privileged-scope rule to scope for the user sub as
// that user is now (issue 16: a grant must not outlive the role that
// allowed it), for grants served by other packages that carry a user's
// scope forward, such as token exchange. named are the scopes the request
// asked for by name (refused with invalid_scope when not permitted);
// others are dropped. A user that no longer exists is invalid_grant.
func (s *Server) UserScope(ctx context.Context, sub, scope string, named []string) (string, error) {
	u, err := s.users.Get(ctx, sub)
	if errors.Is(err, storage.ErrNotFound) {
		return "", &Error{Code: "invalid_grant", Description: "the token's user no longer exists", Status: 400}
	}
	if err != nil {
		return "", ServerError(fmt.Errorf("read user for scope: %w", err))
	}
	kept, perr := userScope(&u, scope, named)
	if perr != nil {
		return "", perr
	}
	return kept, nil
}

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

// parseScope is clients.ParseScope with its RFC 6749 §5.2 answer.
func parseScope(s string) ([]string, *Error) {
	toks, err := clients.ParseScope(s)
	if err != nil {
		return nil, errInvalidScope(err.Error())
	}
	return toks, nil
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
