// Package keys owns Signet's signing keys: generation, the lifecycle
// (pending → active → retired → purged, and revoked), rotation as one storage
// transaction, encryption of private keys at rest, and the in-memory snapshot
// that the token hot path and the JWKS handler read without touching storage.
package keys

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// State is where a key is in its lifecycle.
type State string

const (
	// StatePending keys are published in the JWKS but never sign, so that
	// every verifier's cache has seen them before their first token arrives.
	StatePending State = "pending"
	// StateActive is the one key per algorithm that signs new tokens.
	StateActive State = "active"
	// StateRetired keys sign nothing and stay published until every token
	// they could have signed has expired.
	StateRetired State = "retired"
	// StateRevoked keys were compromised: out of the JWKS at once.
	StateRevoked State = "revoked"
)

// Bucket is the storage bucket holding key records, one per kid.
const Bucket = "keys"

// scheduleKey holds, in Bucket, the time of the next scheduled rotation
// (unix nanoseconds, decimal). No kid can take it: a kid is base64url.
const scheduleKey = "~next_rotation"

func encodeSchedule(t time.Time) []byte {
	if t.IsZero() {
		return []byte("0")
	}
	return strconv.AppendInt(nil, t.UnixNano(), 10)
}

func decodeSchedule(b []byte) (time.Time, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("decode the stored rotation schedule %q: %w", b, err)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, n).UTC(), nil
}

// Info is the public description of a key: everything but private material.
type Info struct {
	KID         string    `json:"kid"`
	Alg         string    `json:"alg"`
	State       State     `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	// ExpiresAt is when the purge job may delete a retired or revoked key:
	// retired_at + max token TTL + leeway.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Custody names where the private half lives (keys/custody); empty is
	// the sealed-in-store custody.
	Custody string `json:"custody,omitempty"`
}

// LogValue keeps log lines to what identifies the key.
func (i Info) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", i.KID), slog.String("alg", i.Alg), slog.String("state", string(i.State)))
}

// record is the stored form of a key. Public is the public JWK as JSON;
// Private is the PKCS #8 private key sealed with AES-256-GCM under the KEK
// (see seal), present only while the key may still sign (pending, active).
// Handle is the private half's handle in an external custody (a PKCS#11
// object's CKA_ID); it stays until the purge job deletes the record and then
// destroys the object, so no record ever names an object that is gone.
type record struct {
	Info
	Public  json.RawMessage `json:"public"`
	Private []byte          `json:"private,omitempty"`
	Handle  []byte          `json:"handle,omitempty"`
}

// LogValue never prints key material.
func (r record) LogValue() slog.Value { return r.Info.LogValue() }

func decodeRecord(kid string, b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("decode key %s: %w", kid, err)
	}
	if r.KID != kid {
		return record{}, fmt.Errorf("decode key %s: record names kid %q", kid, r.KID)
	}
	switch r.State {
	case StatePending, StateActive, StateRetired, StateRevoked:
	default:
		return record{}, fmt.Errorf("decode key %s: unknown state %q", kid, r.State)
	}
	if _, ok := algorithms[r.Alg]; !ok {
		return record{}, fmt.Errorf("decode key %s: unknown algorithm %q", kid, r.Alg)
	}
	if len(r.Public) == 0 {
		return record{}, fmt.Errorf("decode key %s: no public key", kid)
	}
	return r, nil
}

func encodeRecord(r record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode key %s: %w", r.KID, err)
	}
	return b, nil
}
