package sessions

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/backchannel"
	"github.com/signet-auth/signet/storage"
)

// Back-channel logout: a session remembers the clients it issued to, and
// the transaction that ends it writes their logouts to the outbox
// (package backchannel), so a logout committed is a logout delivered.

// addClientTx records on the session stored under key that it issued to
// clientID. A session already gone is left alone: what it issued is
// refused at the token endpoint.
func addClientTx(tx storage.Tx, key, clientID string) error {
	if key == "" {
		return nil
	}
	var s Session
	if err := storage.GetJSON(tx, sessionsBucket, key, &s); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	}
	var added bool
	if s.Clients, added = backchannel.AddClient(s.Clients, clientID); !added {
		return nil
	}
	return storage.PutJSON(tx, sessionsBucket, key, &s)
}

// notifyEndTx writes the logouts of the ending session s.
func (m *Manager) notifyEndTx(tx storage.Tx, s *Session) error {
	return backchannel.EnqueueTx(tx, s.UserID, s.SID, s.Clients, m.opts.Now())
}

// notifyEndKeyTx is notifyEndTx for the session stored under key.
func notifyEndKeyTx(tx storage.Tx, key string, now time.Time) error {
	var s Session
	if err := storage.GetJSON(tx, sessionsBucket, key, &s); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	}
	return backchannel.EnqueueTx(tx, s.UserID, s.SID, s.Clients, now)
}

// notifyClientTx tells clientID, alone, that userID's sessions which
// issued to it are over for it (a withdrawn consent): one logout per such
// session, and the client leaves the session's list, so that the
// session's own end later does not tell it again.
func notifyClientTx(tx storage.Tx, userID, clientID string, now time.Time) error {
	var keys []string
	err := tx.Scan(userSessionsBucket, userID+"/", func(k string, _ []byte) error {
		keys = append(keys, strings.TrimPrefix(k, userID+"/"))
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range keys {
		var s Session
		if err := storage.GetJSON(tx, sessionsBucket, key, &s); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			return err
		}
		i := slices.Index(s.Clients, clientID)
		if i < 0 || s.UserID != userID {
			continue
		}
		if err := backchannel.EnqueueTx(tx, userID, s.SID, []string{clientID}, now); err != nil {
			return err
		}
		s.Clients = slices.Delete(s.Clients, i, i+1)
		if err := storage.PutJSON(tx, sessionsBucket, key, &s); err != nil {
			return err
		}
	}
	return nil
}
