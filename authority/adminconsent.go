package authority

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
)

// Consents lists what userID allowed each client that still exists, as
// the instance it is now. A consent given to a deleted client, or to an
// earlier instance of its id, allows nothing (sessions.Consent) and is
// not listed: for the user it ended with the client.
func Consents(ctx context.Context, store storage.Store, userID string) ([]sessions.Consent, error) {
	all, err := sessions.Consents(ctx, store, userID)
	if err != nil {
		return nil, err
	}
	reg := clients.New(store, clients.Options{})
	live := all[:0]
	for _, c := range all {
		ent, err := reg.Lookup(ctx, c.ClientID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list consents: %w", err)
		}
		if ent.Record.Instance == c.ClientInstance {
			live = append(live, c)
		}
	}
	return live, nil
}

// ConsentWithdrawal is the answer to DELETE /admin/users/{id}/consents/{client}.
type ConsentWithdrawal struct {
	Withdrawn       bool `json:"withdrawn"`
	FamiliesRevoked int  `json:"families_revoked"`
}

// adminListConsents is GET /admin/users/{id}/consents.
func (s *Server) adminListConsents(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := s.users.Get(ctx, id); err != nil {
		return userError(err)
	}
	list, err := Consents(ctx, s.cfg.Store, id)
	if err != nil {
		return errServer(err)
	}
	if list == nil {
		list = []sessions.Consent{}
	}
	return c.JSON(http.StatusOK, map[string]any{"consents": list})
}

// adminWithdrawConsent is DELETE /admin/users/{id}/consents/{client}: the
// client must ask again, and its refresh tokens for the user stop working.
func (s *Server) adminWithdrawConsent(c echo.Context) error {
	ctx := c.Request().Context()
	id, client := c.Param("id"), c.Param("client")
	if _, err := s.users.Get(ctx, id); err != nil {
		return userError(err)
	}
	var out ConsentWithdrawal
	err := s.audited(c, "users.consent_withdraw", id, func() (string, error) {
		found, n, err := WithdrawConsent(ctx, s.cfg.Store, id, client, s.cfg.Now())
		if err != nil {
			return "", errServer(err)
		}
		out = ConsentWithdrawal{Withdrawn: found, FamiliesRevoked: n}
		return fmt.Sprintf("client=%s withdrawn=%t families_revoked=%d", client, found, n), nil
	})
	if err != nil {
		return err
	}
	s.feed.invalidate()
	return c.JSON(http.StatusOK, out)
}
