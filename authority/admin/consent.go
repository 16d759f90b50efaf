package admin

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/sessions"
)

// ConsentWithdrawal is the answer to DELETE /admin/users/{id}/consents/{client}.
type ConsentWithdrawal struct {
	Withdrawn       bool `json:"withdrawn"`
	FamiliesRevoked int  `json:"families_revoked"`
}

// adminListConsents is GET /admin/users/{id}/consents.
func (s *api) adminListConsents(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := s.srv.Users().Get(ctx, id); err != nil {
		return userError(err)
	}
	list, err := authority.Consents(ctx, s.srv.Store(), id)
	if err != nil {
		return authority.ServerError(err)
	}
	if list == nil {
		list = []sessions.Consent{}
	}
	return c.JSON(http.StatusOK, map[string]any{"consents": list})
}

// adminWithdrawConsent is DELETE /admin/users/{id}/consents/{client}: the
// client must ask again, and its refresh tokens for the user stop working.
func (s *api) adminWithdrawConsent(c echo.Context) error {
	ctx := c.Request().Context()
	id, client := c.Param("id"), c.Param("client")
	if _, err := s.srv.Users().Get(ctx, id); err != nil {
		return userError(err)
	}
	var out ConsentWithdrawal
	err := s.audited(c, "users.consent_withdraw", id, func() (string, error) {
		found, n, err := s.srv.WithdrawConsent(ctx, id, client)
		if err != nil {
			return "", authority.ServerError(err)
		}
		out = ConsentWithdrawal{Withdrawn: found, FamiliesRevoked: n}
		return fmt.Sprintf("client=%s withdrawn=%t families_revoked=%d", client, found, n), nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
