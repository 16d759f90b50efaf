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

// Consent is what a user allowed a client.
type Consent struct {
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
}

// Consented reports whether userID has allowed clientID every scope in scopes.
func (m *Manager) Consented(ctx context.Context, userID, clientID string, scopes []string) (bool, error) {
	var c Consent
	err := m.store.View(ctx, func(tx storage.Tx) error { return getJSON(tx, consentsBucket, userID+"/"+clientID, &c) })
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("consent: %w", err)
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false, nil
		}
	}
	return true, nil
}

// GrantConsent remembers that userID allowed clientID scopes (added to
// what it allowed before).
func (m *Manager) GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	now := m.opts.Now().UTC()
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		c := Consent{UserID: userID, ClientID: clientID}
		if err := getJSON(tx, consentsBucket, userID+"/"+clientID, &c); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		for _, s := range scopes {
			if !slices.Contains(c.Scopes, s) {
				c.Scopes = append(c.Scopes, s)
			}
		}
		c.GrantedAt = now
		return putJSON(tx, consentsBucket, userID+"/"+clientID, &c)
	})
	if err != nil {
		return fmt.Errorf("grant consent: %w", err)
	}
	return nil
}

// Consents lists what userID has allowed, by client id.
func Consents(ctx context.Context, store storage.Store, userID string) ([]Consent, error) {
	var out []Consent
	err := store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(consentsBucket, userID+"/", func(k string, b []byte) error {
			var c Consent
			if err := getJSON(tx, consentsBucket, k, &c); err != nil {
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
// and reports whether there was one. The caller revokes the client's
// tokens for the user in the same transaction.
func WithdrawConsentTx(tx storage.Tx, userID, clientID string) (bool, error) {
	if strings.Contains(userID, "/") {
		return false, nil
	}
	k := userID + "/" + clientID
	if _, err := tx.Get(consentsBucket, k); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, tx.Delete(consentsBucket, k)
}
