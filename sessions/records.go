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

// Transaction is one login (or consent, or logout confirmation) in
// progress in one browser tab. Several may be open at once in one browser:
// each has its own id and CSRF token, and all are bound to the same
// browser cookie, so tabs never overwrite each other.
type Transaction struct {
	ID string `json:"id"`
	// CSRF is the token the form must send back.
	CSRF string `json:"csrf"`
	// Browser is the hash of the browser-binding cookie it was made for.
	Browser string `json:"browser"`
	// Kind is login, consent or logout.
	Kind string `json:"kind"`
	// Query is the original authorization (or logout) request.
	Query string `json:"query"`
	// UserID is set for consent: who is being asked.
	UserID    string `json:"user_id,omitempty"`
	ExpiresAt int64  `json:"expires_at"` // unix nanoseconds
}

// NewTransaction stores a transaction and returns it with its id, token
// and expiry set.
func (m *Manager) NewTransaction(ctx context.Context, t Transaction) (Transaction, error) {
	t.ID, t.CSRF = NewSecret(), NewSecret()
	t.ExpiresAt = m.opts.Now().Add(m.opts.TransactionTTL).UnixNano()
	// Batch: a page view is one small independent write, and many at once share a commit.
	err := m.store.Batch(ctx, func(tx storage.Tx) error { return putJSON(tx, transactionsBucket, t.ID, &t) })
	if err != nil {
		return Transaction{}, fmt.Errorf("store login transaction: %w", err)
	}
	return t, nil
}

// Transaction returns a live transaction, or ErrNotFound.
func (m *Manager) Transaction(ctx context.Context, id string) (Transaction, error) {
	if !looksLikeSecret(id) {
		return Transaction{}, ErrNotFound
	}
	var t Transaction
	err := m.store.View(ctx, func(tx storage.Tx) error { return getJSON(tx, transactionsBucket, id, &t) })
	if errors.Is(err, storage.ErrNotFound) {
		return Transaction{}, ErrNotFound
	}
	if err != nil {
		return Transaction{}, fmt.Errorf("login transaction: %w", err)
	}
	if m.opts.Now().UnixNano() >= t.ExpiresAt {
		return Transaction{}, ErrNotFound
	}
	return t, nil
}

// FinishTransaction deletes a transaction. It reports false when it was
// already gone: a second submission of the same form (back button, double
// click) must not complete twice.
func (m *Manager) FinishTransaction(ctx context.Context, id string) (bool, error) {
	found := false
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		found = false
		if _, err := tx.Get(transactionsBucket, id); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		}
		found = true
		return tx.Delete(transactionsBucket, id)
	})
	if err != nil {
		return false, fmt.Errorf("finish login transaction: %w", err)
	}
	return found, nil
}

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
