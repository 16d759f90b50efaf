// Package mfa keeps users' second factors in storage: a TOTP secret
// (package totp), sealed under the KEK as private keys are, with the last
// step it accepted, and single-use recovery codes stored as hashes. Every
// check is one store transaction, so a code accepted by one replica is
// refused by every other.
package mfa

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/totp"
)

// Buckets, keyed by user id.
const (
	totpBucket     = "mfa_totp"
	recoveryBucket = "mfa_recovery"
)

// RecoveryCodes is how many recovery codes an enrolment gives.
const RecoveryCodes = 10

// Errors.
var (
	// ErrEnrolled refuses a new TOTP enrolment over a confirmed one: an
	// operator resets it first (a stolen session must not replace it).
	ErrEnrolled = errors.New("mfa: a one-time code app is already set up")
	// ErrNoEnrolment is a confirmation without a started enrolment.
	ErrNoEnrolment = errors.New("mfa: no enrolment in progress")
	// ErrBadCode is a code that does not match (or was used).
	ErrBadCode = errors.New("mfa: the code is not valid")
)

// totpRecord is what is stored for a user's TOTP.
type totpRecord struct {
	Sealed    []byte `json:"sealed"` // keys.SealSecret, aad "totp:"+user id
	Confirmed bool   `json:"confirmed"`
	// LastStep is the last step accepted: codes of that step and before
	// are refused (RFC 6238 §5.2).
	LastStep  int64     `json:"last_step"`
	CreatedAt time.Time `json:"created_at"`
}

type recoveryRecord struct {
	Hashes    []string  `json:"hashes"` // base64url SHA-256 of the unused codes
	CreatedAt time.Time `json:"created_at"`
}

// Factors reads and writes second factors.
type Factors struct {
	store storage.Store
	kek   []byte
	now   func() time.Time
}

// New returns the registry over store; kek seals TOTP secrets.
func New(store storage.Store, kek []byte, now func() time.Time) *Factors {
	if now == nil {
		now = time.Now
	}
	return &Factors{store: store, kek: kek, now: now}
}

// Status is what a user has set up.
type Status struct {
	TOTP          bool      `json:"totp"`
	TOTPSince     time.Time `json:"totp_since,omitzero"`
	RecoveryCodes int       `json:"recovery_codes_left"`
	Passkeys      int       `json:"passkeys"`
}

// Status reads what userID has set up.
func (f *Factors) Status(ctx context.Context, userID string) (Status, error) {
	return ReadStatus(ctx, f.store, userID)
}

// ReadStatus is Status on a store (the offline CLI has no KEK to give).
func ReadStatus(ctx context.Context, store storage.Store, userID string) (Status, error) {
	var st Status
	err := store.View(ctx, func(tx storage.Tx) error {
		var err error
		st, err = readStatus(tx, userID)
		return err
	})
	if err != nil {
		return Status{}, fmt.Errorf("second factors of %s: %w", userID, err)
	}
	return st, nil
}

func readStatus(tx storage.Tx, userID string) (Status, error) {
	var st Status
	err := func() error {
		var t totpRecord
		if err := storage.GetJSON(tx, totpBucket, userID, &t); err == nil && t.Confirmed {
			st.TOTP, st.TOTPSince = true, t.CreatedAt
		} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		var r recoveryRecord
		if err := storage.GetJSON(tx, recoveryBucket, userID, &r); err == nil {
			st.RecoveryCodes = len(r.Hashes)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		var p passkeysRecord
		if err := storage.GetJSON(tx, passkeysBucket, userID, &p); err == nil {
			st.Passkeys = len(p.Passkeys)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return nil
	}()
	return st, err
}

// BeginTOTP starts an enrolment: a new secret, stored sealed and
// unconfirmed (replacing an unconfirmed one), returned to show once.
func (f *Factors) BeginTOTP(ctx context.Context, userID string) ([]byte, error) {
	secret := totp.NewSecret()
	sealed, err := keys.SealSecret(f.kek, "totp:"+userID, secret)
	if err != nil {
		return nil, fmt.Errorf("seal TOTP secret: %w", err)
	}
	rec := totpRecord{Sealed: sealed, CreatedAt: f.now().UTC()}
	err = f.store.Update(ctx, func(tx storage.Tx) error {
		var old totpRecord
		if err := storage.GetJSON(tx, totpBucket, userID, &old); err == nil && old.Confirmed {
			return ErrEnrolled
		} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return storage.PutJSON(tx, totpBucket, userID, &rec)
	})
	if err != nil {
		return nil, fmt.Errorf("begin TOTP enrolment of %s: %w", userID, err)
	}
	return secret, nil
}

// PendingTOTP returns the secret of userID's enrolment in progress (to
// show it again after a mistyped first code), or ErrNoEnrolment.
func (f *Factors) PendingTOTP(ctx context.Context, userID string) ([]byte, error) {
	var rec totpRecord
	err := f.store.View(ctx, func(tx storage.Tx) error { return storage.GetJSON(tx, totpBucket, userID, &rec) })
	if errors.Is(err, storage.ErrNotFound) || (err == nil && rec.Confirmed) {
		return nil, ErrNoEnrolment
	}
	if err != nil {
		return nil, fmt.Errorf("TOTP enrolment of %s: %w", userID, err)
	}
	secret, err := keys.OpenSecret(f.kek, "totp:"+userID, rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open TOTP secret of %s: %w", userID, err)
	}
	return secret, nil
}

// ConfirmTOTP confirms the enrolment in progress with its first code and
// returns the user's new recovery codes (the old ones are replaced); the
// codes are shown once and only their hashes are kept.
func (f *Factors) ConfirmTOTP(ctx context.Context, userID, code string) ([]string, error) {
	codes, hashes := newRecoveryCodes()
	now := f.now()
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		var rec totpRecord
		if err := storage.GetJSON(tx, totpBucket, userID, &rec); errors.Is(err, storage.ErrNotFound) {
			return ErrNoEnrolment
		} else if err != nil {
			return err
		}
		if rec.Confirmed {
			return ErrEnrolled
		}
		step, err := f.match(userID, &rec, code, now)
		if err != nil {
			return err
		}
		rec.Confirmed, rec.LastStep, rec.CreatedAt = true, step, now.UTC()
		if err := storage.PutJSON(tx, totpBucket, userID, &rec); err != nil {
			return err
		}
		return storage.PutJSON(tx, recoveryBucket, userID, &recoveryRecord{Hashes: hashes, CreatedAt: now.UTC()})
	})
	if err != nil {
		return nil, fmt.Errorf("confirm TOTP of %s: %w", userID, err)
	}
	return codes, nil
}

func (f *Factors) match(userID string, rec *totpRecord, code string, now time.Time) (int64, error) {
	secret, err := keys.OpenSecret(f.kek, "totp:"+userID, rec.Sealed)
	if err != nil {
		return 0, fmt.Errorf("open TOTP secret: %w", err)
	}
	defer clear(secret)
	step, ok := totp.Match(secret, code, now, rec.LastStep)
	if !ok {
		return 0, ErrBadCode
	}
	return step, nil
}

// VerifyTOTP checks a code of userID's confirmed TOTP and spends its step
// in the same transaction: the code, and every older one, is refused
// from then on, on every replica. A wrong or spent code is ErrBadCode.
func (f *Factors) VerifyTOTP(ctx context.Context, userID, code string) error {
	now := f.now()
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		var rec totpRecord
		if err := storage.GetJSON(tx, totpBucket, userID, &rec); errors.Is(err, storage.ErrNotFound) {
			return ErrBadCode
		} else if err != nil {
			return err
		}
		if !rec.Confirmed {
			return ErrBadCode
		}
		step, err := f.match(userID, &rec, code, now)
		if err != nil {
			return err
		}
		rec.LastStep = step
		return storage.PutJSON(tx, totpBucket, userID, &rec)
	})
	if err != nil && !errors.Is(err, ErrBadCode) {
		return fmt.Errorf("verify TOTP of %s: %w", userID, err)
	}
	return err
}

// UseRecoveryCode spends one of userID's recovery codes; an unknown or
// spent code is ErrBadCode.
func (f *Factors) UseRecoveryCode(ctx context.Context, userID, code string) error {
	h := sessions.Hash(normalizeRecovery(code))
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		var rec recoveryRecord
		if err := storage.GetJSON(tx, recoveryBucket, userID, &rec); errors.Is(err, storage.ErrNotFound) {
			return ErrBadCode
		} else if err != nil {
			return err
		}
		at := -1
		for i, s := range rec.Hashes {
			if subtle.ConstantTimeCompare([]byte(s), []byte(h)) == 1 {
				at = i
			}
		}
		if at < 0 {
			return ErrBadCode
		}
		rec.Hashes = append(rec.Hashes[:at:at], rec.Hashes[at+1:]...)
		return storage.PutJSON(tx, recoveryBucket, userID, &rec)
	})
	if err != nil && !errors.Is(err, ErrBadCode) {
		return fmt.Errorf("use recovery code of %s: %w", userID, err)
	}
	return err
}

// Reset removes every second factor of userID (an operator's reset, or a
// deleted user) and reports whether there was one.
func Reset(ctx context.Context, store storage.Store, userID string) (bool, error) {
	var had bool
	err := store.Update(ctx, func(tx storage.Tx) error {
		had = false
		for _, b := range []string{totpBucket, recoveryBucket, passkeysBucket} {
			if _, err := tx.Get(b, userID); err == nil {
				had = true
				if err := tx.Delete(b, userID); err != nil {
					return err
				}
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reset second factors of %s: %w", userID, err)
	}
	return had, nil
}

// recoveryAlphabet is lower-case base32: no 0/1/8/9 to confuse with O/I/B/g.
var recoveryAlphabet = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newRecoveryCodes returns RecoveryCodes codes of 80 random bits each
// (xxxx-xxxx-xxxx-xxxx), and their hashes (sessions.Hash, the SHA-256 of
// every stored secret): high-entropy codes need no slow hash, as client
// secrets do not.
func newRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodes {
		var b [10]byte
		_, _ = rand.Read(b[:])
		s := recoveryAlphabet.EncodeToString(b[:]) // 16 characters
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
		hashes = append(hashes, sessions.Hash(s))
	}
	return codes, hashes
}

func normalizeRecovery(code string) string {
	if len(code) > 64 {
		return ""
	}
	return strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
}

// LooksLikeRecoveryCode tells a recovery code from a TOTP code in the one
// field the sign-in page has for both.
func LooksLikeRecoveryCode(code string) bool { return len(normalizeRecovery(code)) == 16 }
