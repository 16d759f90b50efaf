package sessions

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/signet-auth/signet/storage"
)

// Transaction is one login (or consent, or logout confirmation) in
// progress in one browser tab. Several may be open at once in one browser:
// each has its own id and CSRF token, and all are bound to the same
// browser cookie, so tabs never overwrite each other.
//
// A transaction is not stored while it is open: its id is the transaction
// itself, MAC'd with a key kept in storage (shared by every replica), so
// showing a login page writes nothing and nobody can fill storage by
// loading it. Only its completion is stored, to make it single use.
type Transaction struct {
	// ID is what the form carries: the encoded, MAC'd transaction.
	ID string `json:"-"`
	// CSRF is the token the form must send back.
	CSRF string `json:"-"`
	// Browser is the hash of the browser-binding cookie it was made for.
	Browser string `json:"b"`
	// Kind is login, consent or logout.
	Kind string `json:"k"`
	// Query is the original authorization (or logout) request.
	Query string `json:"q"`
	// UserID is set for consent: who is being asked.
	UserID string `json:"u,omitempty"`
	// ClientInstance is the instance of the client the page was shown for
	// (login, consent): a client deleted and created again under the same
	// id while the page was open is another, which the user never saw.
	ClientInstance string `json:"ci,omitempty"`
	// Scopes and Offline are what a consent page showed: the user allows
	// that, not what the client asks by the time the form comes back.
	Scopes  []string `json:"s,omitempty"`
	Offline bool     `json:"o,omitempty"`
	// Data is what a step of the form needs back, MAC'd with the rest (a
	// WebAuthn ceremony's challenge).
	Data      json.RawMessage `json:"d,omitempty"`
	ExpiresAt int64           `json:"e"` // unix nanoseconds
	Nonce     string          `json:"n"`
}

// Buckets of transactions: the MAC key, and the completed transactions
// (nonce → expiry) until they would have expired anyway.
const (
	keysBucket          = "login_keys"
	finishedBucket      = "login_transactions_done"
	transactionKeyName  = "transaction_mac"
	maxTransactionBytes = 16 << 10
)

// macKey loads the transaction MAC key, creating it on first use. Every
// replica reads the same key from storage.
func (m *Manager) macKey(ctx context.Context) ([]byte, error) {
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	if m.key != nil {
		return m.key, nil
	}
	var key []byte
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(keysBucket, transactionKeyName)
		if err == nil && len(b) == 32 {
			key = b
			return nil
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		key = make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
		return tx.Put(keysBucket, transactionKeyName, key)
	})
	if err != nil {
		return nil, fmt.Errorf("login transaction key: %w", err)
	}
	m.key = key
	return key, nil
}

func mac(key []byte, label, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// NewTransaction returns t with its id, token and expiry set.
func (m *Manager) NewTransaction(ctx context.Context, t Transaction) (Transaction, error) {
	key, err := m.macKey(ctx)
	if err != nil {
		return Transaction{}, err
	}
	t.Nonce = NewSecret()[:22]
	t.ExpiresAt = m.opts.Now().Add(m.opts.TransactionTTL).UnixNano()
	body, err := json.Marshal(&t)
	if err != nil {
		return Transaction{}, fmt.Errorf("encode login transaction: %w", err)
	}
	enc := base64.RawURLEncoding.EncodeToString(body)
	t.ID = enc + "." + base64.RawURLEncoding.EncodeToString(mac(key, "tx", enc))
	t.CSRF = base64.RawURLEncoding.EncodeToString(mac(key, "csrf", t.Nonce))
	return t, nil
}

// Transaction returns a live transaction from its id, or ErrNotFound for
// one that is forged, expired or already finished. The caller still checks
// the CSRF token and the browser binding.
func (m *Manager) Transaction(ctx context.Context, id string) (Transaction, error) {
	if id == "" || len(id) > maxTransactionBytes {
		return Transaction{}, ErrNotFound
	}
	key, err := m.macKey(ctx)
	if err != nil {
		return Transaction{}, err
	}
	enc, sig, ok := strings.Cut(id, ".")
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(got, mac(key, "tx", enc)) {
		return Transaction{}, ErrNotFound
	}
	body, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return Transaction{}, ErrNotFound
	}
	var t Transaction
	if err := json.Unmarshal(body, &t); err != nil {
		return Transaction{}, ErrNotFound
	}
	if m.opts.Now().UnixNano() >= t.ExpiresAt {
		return Transaction{}, ErrNotFound
	}
	done := false
	err = m.store.View(ctx, func(tx storage.Tx) error {
		_, err := tx.Get(finishedBucket, t.Nonce)
		if err == nil {
			done = true
			return nil
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return Transaction{}, fmt.Errorf("login transaction: %w", err)
	}
	if done {
		return Transaction{}, ErrNotFound
	}
	t.ID = id
	t.CSRF = base64.RawURLEncoding.EncodeToString(mac(key, "csrf", t.Nonce))
	return t, nil
}

// FinishTransaction marks a transaction completed. It reports false when
// it already was: a second submission of the same form (back button,
// double click) must not complete twice.
func (m *Manager) FinishTransaction(ctx context.Context, id string) (bool, error) {
	t, err := m.Transaction(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	first := false
	err = m.store.Update(ctx, func(tx storage.Tx) error {
		first = false
		if _, err := tx.Get(finishedBucket, t.Nonce); err == nil {
			return nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		first = true
		return tx.Put(finishedBucket, t.Nonce, strconv.AppendInt(nil, t.ExpiresAt, 10))
	})
	if err != nil {
		return false, fmt.Errorf("finish login transaction: %w", err)
	}
	return first, nil
}
