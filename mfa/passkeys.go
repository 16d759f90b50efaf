package mfa

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/signet-auth/signet/storage"
)

// passkeysBucket holds each user's WebAuthn credentials (user id →
// passkeysRecord). Public keys only: nothing here is secret.
const passkeysBucket = "mfa_passkeys"

// MaxPasskeys bounds a user's passkeys.
const MaxPasskeys = 10

// ErrTooManyPasskeys refuses an eleventh passkey.
var ErrTooManyPasskeys = errors.New("mfa: too many passkeys")

// Passkey is one WebAuthn credential of a user, named by them.
type Passkey struct {
	Name       string              `json:"name"`
	Credential webauthn.Credential `json:"credential"`
	CreatedAt  time.Time           `json:"created_at"`
	LastUsed   time.Time           `json:"last_used,omitzero"`
}

type passkeysRecord struct {
	Passkeys []Passkey `json:"passkeys"`
}

// Passkeys lists userID's passkeys.
func (f *Factors) Passkeys(ctx context.Context, userID string) ([]Passkey, error) {
	var rec passkeysRecord
	err := f.store.View(ctx, func(tx storage.Tx) error { return storage.GetJSON(tx, passkeysBucket, userID, &rec) })
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("passkeys of %s: %w", userID, err)
	}
	return rec.Passkeys, nil
}

// AddPasskey stores a new passkey of userID.
func (f *Factors) AddPasskey(ctx context.Context, userID, name string, cred webauthn.Credential) error {
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		var rec passkeysRecord
		if err := storage.GetJSON(tx, passkeysBucket, userID, &rec); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if len(rec.Passkeys) >= MaxPasskeys {
			return ErrTooManyPasskeys
		}
		rec.Passkeys = append(rec.Passkeys, Passkey{Name: name, Credential: cred, CreatedAt: f.now().UTC()})
		return storage.PutJSON(tx, passkeysBucket, userID, &rec)
	})
	if err != nil {
		return fmt.Errorf("add passkey of %s: %w", userID, err)
	}
	return nil
}

// ClonedPasskeyError is an assertion whose signature counter is not above
// Stored, the one last recorded for the passkey (WebAuthn §7.2 step 21): a
// sign that the authenticator was copied, since a real one only counts up
// (or, when equal, the latest assertion sent again). A passkey that keeps
// no counter (synced passkeys send 0 each time) is not concerned.
type ClonedPasskeyError struct{ Stored uint32 }

func (e *ClonedPasskeyError) Error() string {
	return fmt.Sprintf("the passkey's signature counter did not increase past %d: the authenticator may have been copied", e.Stored)
}

// UsedPasskey records a successful assertion of userID's credential, whose
// authenticator data carried counter: its signature counter and last use.
// The counter is compared with the stored one in the transaction that
// stores it, so of two replicas checking assertions of one authenticator
// the later commit sees the earlier's count; a counter that did not go up
// is a *ClonedPasskeyError and nothing is recorded.
func (f *Factors) UsedPasskey(ctx context.Context, userID string, cred webauthn.Credential, counter uint32) error {
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		var rec passkeysRecord
		if err := storage.GetJSON(tx, passkeysBucket, userID, &rec); err != nil {
			return err
		}
		for i := range rec.Passkeys {
			if !bytes.Equal(rec.Passkeys[i].Credential.ID, cred.ID) {
				continue
			}
			stored := rec.Passkeys[i].Credential.Authenticator.SignCount
			if counter <= stored && (counter != 0 || stored != 0) {
				return &ClonedPasskeyError{Stored: stored}
			}
			rec.Passkeys[i].Credential.Authenticator = cred.Authenticator
			rec.Passkeys[i].Credential.Authenticator.SignCount = counter
			rec.Passkeys[i].Credential.Authenticator.CloneWarning = false
			rec.Passkeys[i].LastUsed = f.now().UTC()
		}
		return storage.PutJSON(tx, passkeysBucket, userID, &rec)
	})
	if err != nil {
		return fmt.Errorf("record passkey use of %s: %w", userID, err)
	}
	return nil
}

// RemovePasskey removes userID's passkey with credential id and reports
// whether there was one; it is refused with ErrLastFactor when k needs a
// factor and none would remain.
func (f *Factors) RemovePasskey(ctx context.Context, userID string, id []byte, k Keep) (bool, error) {
	var found bool
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		found = false
		var rec passkeysRecord
		if err := storage.GetJSON(tx, passkeysBucket, userID, &rec); errors.Is(err, storage.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if found = removePasskey(&rec, id); !found {
			return nil
		}
		st, err := readStatus(tx, userID)
		if err != nil {
			return err
		}
		if st.Passkeys = len(rec.Passkeys); !k.remains(st) {
			return ErrLastFactor
		}
		if len(rec.Passkeys) == 0 {
			return tx.Delete(passkeysBucket, userID)
		}
		return storage.PutJSON(tx, passkeysBucket, userID, &rec)
	})
	if err != nil {
		return false, fmt.Errorf("remove passkey of %s: %w", userID, err)
	}
	return found, nil
}
