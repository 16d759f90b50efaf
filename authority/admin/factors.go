package admin

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/mfa"
)

// FactorsReset is the answer to DELETE /admin/users/{id}/factors.
type FactorsReset struct {
	// Removed says the user had a second factor (or recovery codes).
	Removed bool `json:"removed"`
}

// adminGetFactors is GET /admin/users/{id}/factors: what the user set up,
// never a secret.
func (s *api) adminGetFactors(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := s.srv.Users().Get(ctx, id); err != nil {
		return userError(err)
	}
	st, err := mfa.ReadStatus(ctx, s.srv.Store(), id)
	if err != nil {
		return authority.ServerError(err)
	}
	return c.JSON(http.StatusOK, st)
}

// adminResetFactors is DELETE /admin/users/{id}/factors: the user lost
// their device; they sign in with the password and set up a new one.
func (s *api) adminResetFactors(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := s.srv.Users().Get(ctx, id); err != nil {
		return userError(err)
	}
	var out FactorsReset
	err := s.audited(c, "users.factors_reset", id, func() (string, error) {
		had, err := mfa.Reset(ctx, s.srv.Store(), id)
		if err != nil {
			return "", authority.ServerError(err)
		}
		out.Removed = had
		return fmt.Sprintf("removed=%t", had), nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
