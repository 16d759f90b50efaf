package admin

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/mfa"
)

// FactorsReset is the answer to DELETE /admin/users/{id}/factors.
type FactorsReset struct {
	// Removed says the user had a second factor (or recovery codes).
	Removed bool `json:"removed"`
}

// Factors is the answer to GET /admin/users/{id}/factors: what the user
// set up, never a secret, and what the second-factor requirement asks of
// them (docs/login.md, Requiring a second factor).
type Factors struct {
	mfa.Status
	// Required: a second factor is required of the user, by
	// login.second_factor.required_for or by the operator.
	Required bool `json:"required"`
	// RequiredBy is the end of the grace period; absent when not
	// required, or when the policy has not yet applied to the user (it
	// starts at their next sign-in).
	RequiredBy *time.Time `json:"required_by,omitempty"`
}

// adminGetFactors is GET /admin/users/{id}/factors. It reads only: looking
// at a user does not start their grace period.
func (s *api) adminGetFactors(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := s.srv.Users().Get(ctx, c.Param("id"))
	if err != nil {
		return userError(err)
	}
	d, err := s.srv.FactorStanding(ctx, &u)
	if err != nil {
		return authority.ServerError(err)
	}
	out := Factors{Status: d.Status, Required: d.Required}
	if !d.Due.IsZero() {
		due := d.Due.UTC()
		out.RequiredBy = &due
	}
	return c.JSON(http.StatusOK, out)
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
