package mfa

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Who the configured policy requires a second factor of
// (login.second_factor.required_for), beyond the users an operator
// requires one of.
const (
	RequiredForNone   = "none"
	RequiredForAdmins = "admins" // users holding the signet:admin role
	RequiredForAll    = "all"
)

// policyBucket keeps, per user id, when the configured policy first
// applied to the user: the grace period counts from there, the same on
// every replica.
const policyBucket = "mfa_policy"

type policyRecord struct {
	Since time.Time `json:"since"`
}

// ErrLastFactor refuses to remove a user's last second factor while one
// is required of them.
var ErrLastFactor = errors.New("mfa: a second factor is required of this user and this is their last one")

// Policy is the server-wide second-factor requirement.
type Policy struct {
	// RequiredFor is RequiredForNone (or empty), RequiredForAdmins or
	// RequiredForAll.
	RequiredFor string
	// Grace is how long after a requirement first applies to a user they
	// may still sign in with the password alone while they have no second
	// factor (shown a reminder); after it, they set one up before
	// anything is issued to them.
	Grace time.Duration
}

// Validate names what is wrong with p.
func (p Policy) Validate() error {
	switch p.RequiredFor {
	case "", RequiredForNone, RequiredForAdmins, RequiredForAll:
	default:
		return fmt.Errorf("mfa: required_for %q is not one of none, admins, all", p.RequiredFor)
	}
	if p.Grace < 0 {
		return fmt.Errorf("mfa: grace %s is negative", p.Grace)
	}
	return nil
}

// Subject is the user a requirement is evaluated for.
type Subject struct {
	UserID string
	// Admin: the user holds the admin role (RequiredForAdmins).
	Admin bool
	// Required: an operator requires a second factor of this user, since
	// RequiredSince.
	Required      bool
	RequiredSince time.Time
}

// Demand is what the requirement asks of one user.
type Demand struct {
	// Required: the user must sign in with a second factor.
	Required bool
	// Due is the end of the grace period of a required user (zero when
	// not required).
	Due time.Time
	// Status is what the user has set up.
	Status Status
}

// Enrolled reports whether the user has a factor a sign-in can ask for:
// an authenticator app, or a passkey when passkeys are on.
func (d Demand) Enrolled(passkeys bool) bool {
	return d.Status.TOTP || (passkeys && d.Status.Passkeys > 0)
}

// InGrace reports whether a required user without a factor may still
// sign in with the password alone at now.
func (d Demand) InGrace(now time.Time, passkeys bool) bool {
	return d.Required && !d.Enrolled(passkeys) && now.Before(d.Due)
}

// MustEnrol reports whether a required user without a factor must set
// one up before anything is issued to them at now.
func (d Demand) MustEnrol(now time.Time, passkeys bool) bool {
	return d.Required && !d.Enrolled(passkeys) && !now.Before(d.Due)
}

// Applies reports whether p or the operator requires a second factor of
// s, without reading the store.
func (p Policy) Applies(s Subject) bool {
	return s.Required || p.RequiredFor == RequiredForAll || (p.RequiredFor == RequiredForAdmins && s.Admin)
}

// Evaluate reads what p and the operator ask of s at now. The first
// evaluation under p records when p started to apply to the user (one
// write per user, ever; every later one, on any replica, reads it), so
// the grace period does not restart.
func (p Policy) Evaluate(ctx context.Context, store storage.Store, s Subject, now time.Time) (Demand, error) {
	return p.evaluate(ctx, store, s, now, true)
}

// Peek is Evaluate without its write: what p and the operator ask of s
// as an operator looks at it, without starting the grace period of a user
// the policy has not yet applied to (Due is then zero: it is set at the
// user's next sign-in).
func (p Policy) Peek(ctx context.Context, store storage.Store, s Subject) (Demand, error) {
	return p.evaluate(ctx, store, s, time.Time{}, false)
}

func (p Policy) evaluate(ctx context.Context, store storage.Store, s Subject, now time.Time, start bool) (Demand, error) {
	byPolicy := p.RequiredFor == RequiredForAll || (p.RequiredFor == RequiredForAdmins && s.Admin)
	var d Demand
	var rec policyRecord
	found := false
	err := store.View(ctx, func(tx storage.Tx) error {
		var err error
		if d.Status, err = readStatus(tx, s.UserID); err != nil {
			return err
		}
		if !byPolicy {
			return nil
		}
		err = storage.GetJSON(tx, policyBucket, s.UserID, &rec)
		found = err == nil
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	})
	if err == nil && byPolicy && !found && start {
		rec, err = startPolicy(ctx, store, s.UserID, now)
	}
	if err != nil {
		return Demand{}, fmt.Errorf("second-factor requirement of %s: %w", s.UserID, err)
	}
	if !byPolicy && !s.Required {
		return d, nil
	}
	var since time.Time
	if s.Required {
		since = s.RequiredSince
	}
	if byPolicy && !rec.Since.IsZero() && (since.IsZero() || rec.Since.Before(since)) {
		since = rec.Since
	}
	d.Required = true
	if !since.IsZero() {
		d.Due = since.Add(p.Grace)
	}
	return d, nil
}

// startPolicy records now as when the policy first applied to userID,
// unless another request (or replica) did first.
func startPolicy(ctx context.Context, store storage.Store, userID string, now time.Time) (policyRecord, error) {
	var rec policyRecord
	err := store.Update(ctx, func(tx storage.Tx) error {
		rec = policyRecord{}
		err := storage.GetJSON(tx, policyBucket, userID, &rec)
		if err == nil {
			return nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		rec.Since = now.UTC()
		return storage.PutJSON(tx, policyBucket, userID, &rec)
	})
	return rec, err
}

// Forget removes everything mfa keeps of a deleted user: the second
// factors and when the policy started to apply to them.
func Forget(ctx context.Context, store storage.Store, userID string) error {
	if _, err := Reset(ctx, store, userID); err != nil {
		return err
	}
	err := store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Delete(policyBucket, userID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget second-factor policy of %s: %w", userID, err)
	}
	return nil
}

// Keep is what removing a factor must leave when a second factor is
// required of the user: another factor, counting passkeys only when
// they are on. The zero Keep allows removing the last one.
type Keep struct {
	One      bool
	Passkeys bool
}

// remains reports whether st still satisfies k.
func (k Keep) remains(st Status) bool {
	return !k.One || st.TOTP || (k.Passkeys && st.Passkeys > 0)
}

// RemoveTOTP removes userID's authenticator app and its recovery codes,
// refused with ErrLastFactor when k needs a factor and none would
// remain; it reports whether there was an app.
func (f *Factors) RemoveTOTP(ctx context.Context, userID string, k Keep) (bool, error) {
	var had bool
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		st, err := readStatus(tx, userID)
		if err != nil {
			return err
		}
		if had = st.TOTP; !had {
			return nil
		}
		st.TOTP = false
		if !k.remains(st) {
			return ErrLastFactor
		}
		for _, b := range []string{totpBucket, recoveryBucket} {
			if err := tx.Delete(b, userID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("remove TOTP of %s: %w", userID, err)
	}
	return had, nil
}

// NewRecoveryCodes replaces userID's recovery codes (those left are
// spent) and returns the new ones, to show once. They go with an
// authenticator app: without one it is ErrNoEnrolment.
func (f *Factors) NewRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes, hashes := newRecoveryCodes()
	err := f.store.Update(ctx, func(tx storage.Tx) error {
		st, err := readStatus(tx, userID)
		if err != nil {
			return err
		}
		if !st.TOTP {
			return ErrNoEnrolment
		}
		return storage.PutJSON(tx, recoveryBucket, userID, &recoveryRecord{Hashes: hashes, CreatedAt: f.now().UTC()})
	})
	if err != nil {
		return nil, fmt.Errorf("new recovery codes of %s: %w", userID, err)
	}
	return codes, nil
}

// removePasskey drops the passkey with credential id from rec.
func removePasskey(rec *passkeysRecord, id []byte) bool {
	found := false
	kept := rec.Passkeys[:0]
	for _, p := range rec.Passkeys {
		if bytes.Equal(p.Credential.ID, id) {
			found = true
			continue
		}
		kept = append(kept, p)
	}
	rec.Passkeys = kept
	return found
}
