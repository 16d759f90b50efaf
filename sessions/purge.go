package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/signet-auth/signet/storage"
)

// usedCodeKeep is how long a code record outlives its expiry: a code
// presented again within this time still revokes what it issued.
const usedCodeKeep = time.Hour

// Purge deletes expired browser sessions (with their user index entries),
// finished login transactions, old authorization codes and device codes,
// and reports one storage.Purged per kind ("browser_sessions",
// "login_transactions", "authorization_codes", "device_codes"). Each record is deleted on a check of its own
// value, so a session touched meanwhile is left for the next run and
// nothing else makes the purge conflict. Consents do not expire.
func (m *Manager) Purge(ctx context.Context) []storage.Purged {
	now := m.opts.Now()
	return []storage.Purged{
		m.purgeSessions(ctx, now),
		storage.PurgeBucket(ctx, m.store, "login_transactions", finishedBucket, func(_ string, v []byte) (time.Time, bool) {
			exp, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return now, true
			}
			return time.Unix(0, exp), now.UnixNano() >= exp
		}),
		m.purgeCodes(ctx, now),
		m.purgeDeviceCodes(ctx, now, usedCodeKeep),
	}
}

// purgeSessions deletes expired SSO sessions and the index entries of
// sessions that are gone or expired.
func (m *Manager) purgeSessions(ctx context.Context, now time.Time) storage.Purged {
	var sess, index storage.Expired
	err := m.store.View(ctx, func(tx storage.Tx) error {
		sess, index = storage.Expired{Bucket: sessionsBucket}, storage.Expired{Bucket: userSessionsBucket}
		live := map[string]bool{}
		dead := map[string]time.Time{}
		err := tx.Scan(sessionsBucket, "", func(k string, b []byte) error {
			var s Session
			if json.Unmarshal(b, &s) != nil {
				sess.Add(k, b, now)
				return nil
			}
			if m.alive(&s, now) {
				live[k] = true
				return nil
			}
			since := time.Unix(0, min(s.CreatedAt+int64(m.opts.AbsoluteTTL), s.LastSeen+int64(m.opts.IdleTTL)))
			dead[k] = since
			sess.Add(k, b, since)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Scan(userSessionsBucket, "", func(k string, v []byte) error {
			id := k[strings.LastIndexByte(k, '/')+1:] // user id "/" session key
			if !live[id] {
				since, ok := dead[id]
				if !ok {
					since = now
				}
				index.Add(k, v, since)
			}
			return nil
		})
	})
	if err != nil {
		return storage.Purged{Kind: "browser_sessions", Err: fmt.Errorf("purge browser sessions: %w", err)}
	}
	return storage.PurgeExpired(ctx, m.store, "browser_sessions", &index, &sess)
}

// purgeCodes deletes authorization codes past their expiry and usedCodeKeep,
// and the user index entries (user_authorization_codes, which lets a consent
// withdrawal end a user's codes) of codes that are gone or dead, so the index
// does not grow forever.
func (m *Manager) purgeCodes(ctx context.Context, now time.Time) storage.Purged {
	var codes, index storage.Expired
	err := m.store.View(ctx, func(tx storage.Tx) error {
		codes, index = storage.Expired{Bucket: codesBucket}, storage.Expired{Bucket: userCodesBucket}
		live := map[string]bool{}
		dead := map[string]time.Time{}
		err := tx.Scan(codesBucket, "", func(k string, v []byte) error {
			var rec struct {
				ExpiresAt int64 `json:"expires_at"`
			}
			if json.Unmarshal(v, &rec) != nil {
				codes.Add(k, v, now)
				return nil
			}
			drop := rec.ExpiresAt + int64(usedCodeKeep)
			if now.UnixNano() < drop {
				live[k] = true
				return nil
			}
			dead[k] = time.Unix(0, drop)
			codes.Add(k, v, dead[k])
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Scan(userCodesBucket, "", func(k string, v []byte) error {
			code := k[strings.LastIndexByte(k, '/')+1:] // user id "/" client id "/" code key
			if !live[code] {
				since, ok := dead[code]
				if !ok {
					since = now
				}
				index.Add(k, v, since)
			}
			return nil
		})
	})
	if err != nil {
		return storage.Purged{Kind: "authorization_codes", Err: fmt.Errorf("purge authorization codes: %w", err)}
	}
	return storage.PurgeExpired(ctx, m.store, "authorization_codes", &index, &codes)
}
