package sessions

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Device authorization (RFC 8628). A device code is the device's secret
// (256 random bits, stored as its hash, like authorization codes); a user
// code is what the user types on the hosted page. Both point at one
// record, so every replica answers the device's polls and the user's page
// from the store.
const (
	deviceCodesBucket = "device_codes"      // sha256(device code) → DeviceCode
	deviceUsersBucket = "device_user_codes" // sha256(normalized user code) → sha256(device code)
)

// Device flow defaults.
const (
	// DefaultDeviceCodeTTL is how long the user has to enter the code.
	DefaultDeviceCodeTTL = 10 * time.Minute
	// DefaultDeviceInterval is the polling interval the device is told.
	DefaultDeviceInterval = 5 * time.Second
	// SlowDownStep is what slow_down adds to the interval (RFC 8628 §3.5).
	SlowDownStep = 5 * time.Second
)

// Device code states.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
)

// userCodeAlphabet is 20 consonants (RFC 8628 §6.1): no vowels, so no
// words; no digits, so nothing to confuse (0/O, 1/I); case-insensitive.
// Eight characters give 20^8 ≈ 2.6·10^10 codes (34.6 bits): against the
// per-address limit on wrong codes and a ten-minute life, a guess lands on
// a live code with negligible probability.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

const userCodeLen = 8

// DeviceCode is a device authorization as stored under the hash of its
// device code.
type DeviceCode struct {
	ClientID string `json:"client_id"`
	// ClientInstance binds the code to one life of the client
	// (clients/instance.go): a client deleted and created again under the
	// same id cannot poll the old one's codes.
	ClientInstance string `json:"client_instance,omitempty"`
	Scope          string `json:"scope"`
	// Resources are the RFC 8707 resources (or the audience) the device
	// named; none means the client's default audience.
	Resources []string `json:"resources,omitempty"`
	// UserCodeKey is the deviceUsersBucket key, so the purge and the
	// decision remove it.
	UserCodeKey string `json:"user_code_key"`
	Status      string `json:"status"`
	// Set when the user decides: who, from which SSO session, and whether
	// the client may keep access (refresh tokens), as the page showed.
	UserID   string `json:"user_id,omitempty"`
	SID      string `json:"sid,omitempty"`
	Session  string `json:"session,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
	Offline  bool   `json:"offline,omitempty"`
	// AMR and ACR are the session's factors and level (factors.go).
	AMR []string `json:"amr,omitempty"`
	ACR string   `json:"acr,omitempty"`
	// Interval is the polling interval in seconds; slow_down raises it.
	Interval  int64 `json:"interval"`
	LastPoll  int64 `json:"last_poll,omitempty"` // unix nanoseconds
	ExpiresAt int64 `json:"expires_at"`          // unix nanoseconds
	UsedAt    int64 `json:"used_at,omitempty"`   // unix nanoseconds: redeemed
	// Set by the redemption: a second redemption revokes these.
	Family    string `json:"family,omitempty"`
	AccessJTI string `json:"access_jti,omitempty"`
	AccessExp int64  `json:"access_exp,omitempty"`
}

// NewUserCode returns a random user code, normalized (eight letters).
func NewUserCode() string {
	var b [userCodeLen]byte
	out := make([]byte, userCodeLen)
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		ok := true
		for i, v := range b {
			// 240 = 12·20: rejecting 240..255 keeps every letter equally likely.
			if v >= 240 {
				ok = false
				break
			}
			out[i] = userCodeAlphabet[int(v)%len(userCodeAlphabet)]
		}
		if ok {
			return string(out)
		}
	}
}

// NormalizeUserCode accepts what a user types (any case, dashes and spaces
// anywhere) and returns the eight letters, or false when it cannot be a
// user code.
func NormalizeUserCode(s string) (string, bool) {
	if len(s) > 32 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != userCodeLen {
		return "", false
	}
	return b.String(), true
}

// FormatUserCode shows a normalized user code as XXXX-XXXX.
func FormatUserCode(code string) string {
	if len(code) != userCodeLen {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// NewDeviceCode stores d (pending, with the given expiry and interval) and
// returns its device code and user code (normalized). A user code taken by
// a live authorization is drawn again.
func NewDeviceCode(ctx context.Context, store storage.Store, d DeviceCode) (deviceCode, userCode string, err error) {
	deviceCode = NewSecret()
	key := Hash(deviceCode)
	d.Status, d.UsedAt, d.LastPoll = DevicePending, 0, 0
	d.Family, d.AccessJTI, d.AccessExp = "", "", 0
	d.UserID, d.SID, d.Session, d.AuthTime, d.Offline = "", "", "", 0, false
	for range 8 {
		userCode = NewUserCode()
		d.UserCodeKey = Hash(userCode)
		taken := false
		err = store.Update(ctx, func(tx storage.Tx) error {
			taken = false
			if _, err := tx.Get(deviceUsersBucket, d.UserCodeKey); err == nil {
				taken = true
				return nil
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err := storage.PutJSON(tx, deviceCodesBucket, key, &d); err != nil {
				return err
			}
			return tx.Put(deviceUsersBucket, d.UserCodeKey, []byte(key))
		})
		if err != nil {
			return "", "", fmt.Errorf("store device code: %w", err)
		}
		if !taken {
			return deviceCode, userCode, nil
		}
	}
	return "", "", errors.New("store device code: no free user code after 8 draws")
}

// PendingDevice returns the pending, unexpired authorization of a user
// code (as the user typed it) and its storage key, or ErrNotFound.
func (m *Manager) PendingDevice(ctx context.Context, userCode string) (DeviceCode, string, error) {
	norm, ok := NormalizeUserCode(userCode)
	if !ok {
		return DeviceCode{}, "", ErrNotFound
	}
	var d DeviceCode
	var key string
	err := m.store.View(ctx, func(tx storage.Tx) error {
		k, err := tx.Get(deviceUsersBucket, Hash(norm))
		if err != nil {
			return err
		}
		key = string(k)
		return storage.GetJSON(tx, deviceCodesBucket, key, &d)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return DeviceCode{}, "", ErrNotFound
	}
	if err != nil {
		return DeviceCode{}, "", fmt.Errorf("read device code: %w", err)
	}
	if d.Status != DevicePending || m.opts.Now().UnixNano() >= d.ExpiresAt {
		return DeviceCode{}, "", ErrNotFound
	}
	return d, key, nil
}

// DeviceDecision is the user's answer on the hosted page.
type DeviceDecision struct {
	Approve bool
	// What the page was shown for: the decision is refused when the
	// authorization changed since (another client instance or scope).
	ClientInstance, Scope string
	UserID, SID, Session  string
	AuthTime              int64
	Offline               bool
	AMR                   []string
	ACR                   string
	// Consent, when set, is remembered in the same transaction as an
	// approval (a third-party client's).
	Consent *Consent
}

// DecideDevice records the user's decision on the pending authorization
// stored under key, once: the user code stops working in the same
// transaction. ErrNotFound when it is no longer pending, has expired or
// is not what the page showed.
func (m *Manager) DecideDevice(ctx context.Context, key string, dd DeviceDecision) error {
	now := m.opts.Now()
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		var d DeviceCode
		if err := storage.GetJSON(tx, deviceCodesBucket, key, &d); err != nil {
			return err
		}
		if d.Status != DevicePending || now.UnixNano() >= d.ExpiresAt || d.ClientInstance != dd.ClientInstance || d.Scope != dd.Scope {
			return ErrNotFound
		}
		d.Status = DeviceDenied
		if dd.Approve {
			d.Status = DeviceApproved
			d.UserID, d.SID, d.Session, d.AuthTime, d.Offline = dd.UserID, dd.SID, dd.Session, dd.AuthTime, dd.Offline
			d.AMR, d.ACR = dd.AMR, dd.ACR
			if err := addClientTx(tx, d.Session, d.ClientID); err != nil {
				return err
			}
			if dd.Consent != nil {
				if err := grantConsentTx(tx, dd.Consent, now.UTC()); err != nil {
					return err
				}
			}
		}
		if err := tx.Delete(deviceUsersBucket, d.UserCodeKey); err != nil {
			return err
		}
		return storage.PutJSON(tx, deviceCodesBucket, key, &d)
	})
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("decide device code: %w", err)
	}
	return nil
}

// DeviceCodeTx reads a device code inside tx (the token endpoint's poll
// transaction) and returns its storage key, or ErrNotFound for a code
// that does not exist or has the wrong shape.
func DeviceCodeTx(tx storage.Tx, deviceCode string) (DeviceCode, string, error) {
	if !looksLikeSecret(deviceCode) {
		return DeviceCode{}, "", ErrNotFound
	}
	key := Hash(deviceCode)
	var d DeviceCode
	if err := storage.GetJSON(tx, deviceCodesBucket, key, &d); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return DeviceCode{}, "", ErrNotFound
		}
		return DeviceCode{}, "", err
	}
	return d, key, nil
}

// PutDeviceCodeTx writes d back under key inside tx.
func PutDeviceCodeTx(tx storage.Tx, key string, d *DeviceCode) error {
	return storage.PutJSON(tx, deviceCodesBucket, key, d)
}

// purgeDeviceCodes deletes device codes expired for longer than keep (so
// a late poll still gets expired_token for a while) with the user code
// entries that still point at them, each on a check of its own value
// (storage.PurgeExpired), so live polls never make it conflict.
func (m *Manager) purgeDeviceCodes(ctx context.Context, now time.Time, keep time.Duration) storage.Purged {
	var codes, users storage.Expired
	err := m.store.View(ctx, func(tx storage.Tx) error {
		codes, users = storage.Expired{Bucket: deviceCodesBucket}, storage.Expired{Bucket: deviceUsersBucket}
		return tx.Scan(deviceCodesBucket, "", func(k string, v []byte) error {
			var d DeviceCode
			if json.Unmarshal(v, &d) != nil {
				codes.Add(k, v, now)
				return nil
			}
			drop := d.ExpiresAt + int64(keep)
			if now.UnixNano() < drop {
				return nil
			}
			since := time.Unix(0, drop)
			codes.Add(k, v, since)
			if d.UserCodeKey != "" {
				// Deleted only while it still points here (its value is
				// checked): a user code is never reused while its record
				// lives, but be exact anyway.
				users.Add(d.UserCodeKey, []byte(k), since)
			}
			return nil
		})
	})
	if err != nil {
		return storage.Purged{Kind: "device_codes", Err: fmt.Errorf("purge device codes: %w", err)}
	}
	return storage.PurgeExpired(ctx, m.store, "device_codes", &users, &codes)
}
