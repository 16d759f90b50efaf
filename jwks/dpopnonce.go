package jwks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"time"
)

// KeyedNonces is a DPoPNonces that every replica holding the same key
// takes, with no state and no store: a nonce is the time window it was
// issued in and an HMAC-SHA256 of that window under the key. The nonces of
// the current and of the previous window are valid, so a nonce lives
// between one and two periods and a client that just fetched one is not
// refused at the turn.
type KeyedNonces struct {
	key    []byte
	period time.Duration
	now    func() time.Time
}

// NewKeyedNonces returns nonces keyed by key (at least 32 bytes; the same
// on every replica, secret to them), rotating every period (at least a
// second) on the clock now (nil: time.Now).
func NewKeyedNonces(key []byte, period time.Duration, now func() time.Time) (*KeyedNonces, error) {
	if len(key) < 32 {
		return nil, errors.New("jwks: a DPoP nonce key needs at least 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	return &KeyedNonces{key: bytes.Clone(key), period: max(period, time.Second), now: now}, nil
}

func (n *KeyedNonces) window() int64 { return n.now().UnixNano() / int64(n.period) }

// nonce is base64url(window as 8 bytes ‖ the first 16 bytes of its MAC).
func (n *KeyedNonces) nonce(w int64) string {
	var b [8 + sha256.Size]byte
	binary.BigEndian.PutUint64(b[:8], uint64(w))
	m := hmac.New(sha256.New, n.key)
	m.Write(b[:8])
	m.Sum(b[:8])
	return b64.EncodeToString(b[:8+16])
}

// Current implements DPoPNonces.
func (n *KeyedNonces) Current() string { return n.nonce(n.window()) }

// Valid implements DPoPNonces.
func (n *KeyedNonces) Valid(nonce string) bool {
	w := n.window()
	ok := subtle.ConstantTimeCompare([]byte(nonce), []byte(n.nonce(w)))
	ok |= subtle.ConstantTimeCompare([]byte(nonce), []byte(n.nonce(w-1)))
	return nonce != "" && ok == 1
}
