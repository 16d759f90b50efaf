// Package backchannel delivers OpenID Connect Back-Channel Logout 1.0:
// when a browser session ends, every client that got tokens in it and
// registered a backchannel_logout_uri receives a signed logout token,
// POSTed from the server to the client's server.
//
// Delivery goes through an outbox in the store. The transaction that ends
// a session (package sessions) writes one entry per client of the session
// in the same commit, so a crash between the logout and the delivery loses
// nothing. A worker on the replica that leads the scheduled jobs claims an
// entry with a conditional write (the claim holds for ClaimFor), signs a
// token, POSTs it through the hardened outbound fetcher and deletes the
// entry on a 2xx; failures are retried with exponential back-off until
// GiveUpAfter. An entry is keyed by client and session, so each is told
// once per session. A 2xx whose delete is lost (a crash, the store gone)
// is sent again, with the same jti, once the claim lapses: relying parties
// must drop a jti they have seen, as the specification asks (§2.6).
package backchannel

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Bucket holds the outbox: client id "/" sid → Entry.
const Bucket = "backchannel_outbox"

// Entry is one logout to deliver: the session sid of user Sub ended, and
// ClientID must be told. Times are unix nanoseconds.
type Entry struct {
	ClientID string `json:"client_id"`
	Sub      string `json:"sub"`
	SID      string `json:"sid"`
	// JTI is chosen when the entry is written, so a repeated delivery
	// carries the same jti and the relying party can drop it.
	JTI       string `json:"jti"`
	CreatedAt int64  `json:"created_at"`
	Attempts  int    `json:"attempts,omitempty"`
	// NextAt is when the next attempt is due; ClaimedUntil is when the
	// claim of the attempt in flight lapses (0: none).
	NextAt       int64  `json:"next_at,omitempty"`
	ClaimedUntil int64  `json:"claimed_until,omitempty"`
	LastError    string `json:"last_error,omitempty"`
}

func entryKey(clientID, sid string) string { return clientID + "/" + sid }

// EnqueueTx records inside tx, the transaction that ends session sid of
// sub, that each client in clientIDs must be told. An entry already
// waiting for the same session and client is kept as it is (one logout
// per session and client). Ids that cannot be keys (empty, or with a
// slash) are skipped: no valid client id or sid has one.
func EnqueueTx(tx storage.Tx, sub, sid string, clientIDs []string, now time.Time) error {
	if sid == "" || strings.Contains(sid, "/") {
		return nil
	}
	for _, id := range clientIDs {
		if id == "" || strings.Contains(id, "/") {
			continue
		}
		k := entryKey(id, sid)
		if _, err := tx.Get(Bucket, k); err == nil {
			continue
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("back-channel outbox: %w", err)
		}
		e := Entry{ClientID: id, Sub: sub, SID: sid, JTI: newJTI(), CreatedAt: now.UnixNano()}
		if err := putEntry(tx, k, &e); err != nil {
			return err
		}
	}
	return nil
}

// AddClient returns clients with id added once: the session records each
// client it issued a code (or a device approval) to.
func AddClient(clients []string, id string) ([]string, bool) {
	if id == "" || slices.Contains(clients, id) {
		return clients, false
	}
	return append(clients, id), true
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func putEntry(tx storage.Tx, k string, e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return tx.Put(Bucket, k, b)
}

// errBroken: an outbox entry that does not decode.
var errBroken = errors.New("backchannel: undecodable outbox entry")

func getEntry(tx storage.Tx, k string) (Entry, error) {
	var e Entry
	b, err := tx.Get(Bucket, k)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w %s: %w", errBroken, k, err)
	}
	return e, nil
}
