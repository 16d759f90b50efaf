// Package totp is the time-based one-time password algorithm of RFC 6238
// (HOTP of RFC 4226 over 30-second steps) with the parameters every
// authenticator app supports: HMAC-SHA-1, 6 digits, 30 seconds. It holds
// no state: remembering the last accepted step, so that a code is used
// once, is the caller's (package mfa keeps it in the store).
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"net/url"
	"strings"
	"time"
)

// The parameters: authenticator apps ignore or mishandle any others.
const (
	Digits     = 6
	Period     = 30 * time.Second
	SecretSize = 20 // 160 bits, the HMAC-SHA-1 block RFC 4226 recommends
	// Window is how many steps before and after now a code may be from:
	// one, for clocks a little off and codes typed at the end of a step.
	Window = 1
)

// b32 is the secret's text form in otpauth URIs and for typing: base32
// without padding, as the apps expect.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a new random secret.
func NewSecret() []byte {
	b := make([]byte, SecretSize)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// Encode is the secret as people type it (base32, no padding).
func Encode(secret []byte) string { return b32.EncodeToString(secret) }

// Step is the time step of t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Code is the code of secret at step (RFC 4226 §5.3, dynamic truncation).
func Code(secret []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	const mod = 1000000 // 10^Digits
	out := []byte("000000")
	v %= mod
	for i := Digits - 1; i >= 0; i-- {
		out[i] = byte('0' + v%10)
		v /= 10
	}
	return string(out)
}

// Match returns the step within Window of now whose code is code, and
// whether there is one. It compares every step of the window in constant
// time, so the time taken says nothing about which step matched. Steps at
// or before after are not accepted: the caller passes the last step it
// accepted, so a code (or an older one) is never taken twice.
func Match(secret []byte, code string, now time.Time, after int64) (int64, bool) {
	code = Normalize(code)
	if len(code) != Digits {
		return 0, false
	}
	cur := Step(now)
	var found int64
	ok := 0
	for s := cur - Window; s <= cur+Window; s++ {
		eq := subtle.ConstantTimeCompare([]byte(Code(secret, s)), []byte(code))
		if eq == 1 && s > after && ok == 0 {
			found, ok = s, 1
		}
	}
	return found, ok == 1
}

// Normalize drops the spaces and dashes people type inside a code.
func Normalize(code string) string {
	if len(code) > 32 {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
}

// URI is the otpauth:// URI authenticator apps read from a QR code (the
// Key Uri Format of Google Authenticator, which every app follows):
// otpauth://totp/Issuer:account?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30
func URI(issuer, account string, secret []byte) string {
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	q := url.Values{"secret": {Encode(secret)}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + label + "?" + q.Encode()
}
