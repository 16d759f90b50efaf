package sessions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Consent is what a user allowed a client. It belongs to one instance of
// the client (clients/instance.go), like the client's codes and tokens: a
// client deleted and created again under the same id is another
// instance, which the user has allowed nothing, so the consent page is
// shown again. Records written before instances have no ClientInstance
// and count only for a client that has none either.
type Consent struct {
	UserID         string   `json:"user_id"`
	ClientID       string   `json:"client_id"`
	ClientInstance string   `json:"client_instance,omitempty"`
	Scopes         []string `json:"scopes"`
	// Offline says the consent page told the user that the client keeps
	// access while they are away (refresh tokens) and the user allowed it.
	Offline   bool      `json:"offline,omitempty"`
	GrantedAt time.Time `json:"granted_at"`
}

// covers reports whether c, as stored, allows everything want asks.
func (c *Consent) covers(want *Consent) bool {
	if c.ClientInstance != want.ClientInstance || (want.Offline && !c.Offline) {
		return false
	}
	for _, s := range want.Scopes {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

// Consented reports whether want.UserID has allowed the client instance
// want.ClientInstance every scope in want.Scopes, and to keep access while
// away when want.Offline.
func (m *Manager) Consented(ctx context.Context, want Consent) (bool, error) {
	var ok bool
	err := m.store.View(ctx, func(tx storage.Tx) error {
		var err error
		ok, err = ConsentedTx(tx, &want)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("consent: %w", err)
	}
	return ok, nil
}

// ConsentedTx is Consented inside tx: the token endpoint asks it again
// when it honours what the consent allowed (a third-party client's
// refresh token).
func ConsentedTx(tx storage.Tx, want *Consent) (bool, error) {
	var c Consent
	err := storage.GetJSON(tx, consentsBucket, want.UserID+"/"+want.ClientID, &c)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return c.covers(want), nil
}

// GrantConsent remembers what g.UserID allowed the client instance
// g.ClientInstance: its scopes are added to what the same instance was
// allowed before; a consent of another instance is replaced.
func (m *Manager) GrantConsent(ctx context.Context, g Consent) error {
	now := m.opts.Now().UTC()
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		return grantConsentTx(tx, &g, now)
	})
	if err != nil {
		return fmt.Errorf("grant consent: %w", err)
	}
	return nil
}

// grantConsentTx is GrantConsent inside tx.
func grantConsentTx(tx storage.Tx, g *Consent, now time.Time) error {
	c := Consent{UserID: g.UserID, ClientID: g.ClientID, ClientInstance: g.ClientInstance}
	k := g.UserID + "/" + g.ClientID
	var old Consent
	if err := storage.GetJSON(tx, consentsBucket, k, &old); err == nil && old.ClientInstance == g.ClientInstance {
		c = old
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	for _, s := range g.Scopes {
		if !slices.Contains(c.Scopes, s) {
			c.Scopes = append(c.Scopes, s)
		}
	}
	c.Offline = c.Offline || g.Offline
	c.GrantedAt = now
	return storage.PutJSON(tx, consentsBucket, k, &c)
}

// Consents lists what userID has allowed, by client id.
func Consents(ctx context.Context, store storage.Store, userID string) ([]Consent, error) {
	var out []Consent
	err := store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(consentsBucket, userID+"/", func(k string, b []byte) error {
			var c Consent
			if err := storage.GetJSON(tx, consentsBucket, k, &c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return out, nil
}

// WithdrawConsentTx deletes the consent of userID for clientID inside tx
// and reports whether there was one. It also ends the authorization codes
// of userID for clientID that are still outstanding (deletes them): a code
// issued just before the withdrawal cannot be redeemed after it. The
// caller revokes the client's tokens for the user in the same
// transaction.
func WithdrawConsentTx(tx storage.Tx, userID, clientID string) (bool, error) {
	if strings.Contains(userID, "/") || strings.Contains(clientID, "/") {
		return false, nil
	}
	if err := endCodesTx(tx, userID+"/"+clientID+"/"); err != nil {
		return false, err
	}
	if err := notifyClientTx(tx, userID, clientID, time.Now()); err != nil {
		return false, err
	}
	k := userID + "/" + clientID
	if _, err := tx.Get(consentsBucket, k); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, tx.Delete(consentsBucket, k)
}
