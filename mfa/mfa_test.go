package mfa_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/totp"
)

func TestTOTPEnrolVerifyRecovery(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	kek := make([]byte, keys.KEKSize)
	f := mfa.New(st, kek, clock)

	if err := f.VerifyTOTP(ctx, "u1", "123456"); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("no TOTP: %v", err)
	}
	secret, err := f.BeginTOTP(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.VerifyTOTP(ctx, "u1", totp.Code(secret, totp.Step(now))); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("unconfirmed TOTP verified: %v", err)
	}
	if _, err := f.ConfirmTOTP(ctx, "u1", "000000"); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("wrong first code: %v", err)
	}
	codes, err := f.ConfirmTOTP(ctx, "u1", totp.Code(secret, totp.Step(now)))
	if err != nil || len(codes) != mfa.RecoveryCodes {
		t.Fatalf("confirm: %v, %d codes", err, len(codes))
	}
	if _, err := f.BeginTOTP(ctx, "u1"); !errors.Is(err, mfa.ErrEnrolled) {
		t.Fatalf("enrolment over a confirmed one: %v", err)
	}
	// The confirming code's step is spent; so are the ones before it.
	if err := f.VerifyTOTP(ctx, "u1", totp.Code(secret, totp.Step(now))); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("confirming code accepted again: %v", err)
	}
	now = now.Add(30 * time.Second)
	if err := f.VerifyTOTP(ctx, "u1", totp.Code(secret, totp.Step(now))); err != nil {
		t.Fatalf("next step: %v", err)
	}
	if err := f.VerifyTOTP(ctx, "u1", totp.Code(secret, totp.Step(now))); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("replay: %v", err)
	}
	// Another KEK (another replica misconfigured) opens nothing.
	other := make([]byte, keys.KEKSize)
	other[0] = 1
	now = now.Add(30 * time.Second)
	if err := mfa.New(st, other, clock).VerifyTOTP(ctx, "u1", totp.Code(secret, totp.Step(now))); err == nil || errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("wrong KEK: %v", err)
	}
	if err := f.UseRecoveryCode(ctx, "u1", codes[3]); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if err := f.UseRecoveryCode(ctx, "u1", codes[3]); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("recovery code reused: %v", err)
	}
	if err := f.UseRecoveryCode(ctx, "u2", codes[4]); !errors.Is(err, mfa.ErrBadCode) {
		t.Fatalf("another user's recovery code: %v", err)
	}
	st1, _ := f.Status(ctx, "u1")
	if !st1.TOTP || st1.RecoveryCodes != mfa.RecoveryCodes-1 {
		t.Fatalf("status %+v", st1)
	}
	if had, err := mfa.Reset(ctx, st, "u1"); !had || err != nil {
		t.Fatalf("reset: %v %v", had, err)
	}
	if st1, _ := f.Status(ctx, "u1"); st1.TOTP || st1.RecoveryCodes != 0 {
		t.Fatalf("status after reset %+v", st1)
	}
}
