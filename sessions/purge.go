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

// Purge deletes expired sessions, transactions, authorization codes and
// device codes and returns how many records it deleted. Consents do not
// expire.
func (m *Manager) Purge(ctx context.Context) (int, error) {
	now := m.opts.Now()
	n := 0
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		n = 0
		var dead []string
		err := tx.Scan(sessionsBucket, "", func(k string, b []byte) error {
			var s Session
			if json.Unmarshal(b, &s) != nil || !m.alive(&s, now) {
				dead = append(dead, k)
				if s.UserID != "" && !strings.Contains(s.UserID, "/") {
					dead = append(dead, "\x00"+s.UserID+"/"+k)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if u, ok := strings.CutPrefix(k, "\x00"); ok {
				err = tx.Delete(userSessionsBucket, u)
			} else {
				err, n = tx.Delete(sessionsBucket, k), n+1
			}
			if err != nil {
				return err
			}
		}
		var done []string
		err = tx.Scan(finishedBucket, "", func(k string, v []byte) error {
			if exp, err := strconv.ParseInt(string(v), 10, 64); err != nil || now.UnixNano() >= exp {
				done = append(done, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range done {
			if err := tx.Delete(finishedBucket, k); err != nil {
				return err
			}
			n++
		}
		for _, b := range []struct {
			bucket string
			keep   time.Duration
		}{{codesBucket, usedCodeKeep}} {
			var old, index []string
			err := tx.Scan(b.bucket, "", func(k string, v []byte) error {
				var rec Code
				if json.Unmarshal(v, &rec) != nil || now.UnixNano() >= rec.ExpiresAt+int64(b.keep) {
					old = append(old, k)
					if ik, ok := userCodeKey(&rec, k); ok {
						index = append(index, ik)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range old {
				if err := tx.Delete(b.bucket, k); err != nil {
					return err
				}
				n++
			}
			for _, k := range index {
				if err := tx.Delete(userCodesBucket, k); err != nil {
					return err
				}
			}
		}
		dn, err := purgeDeviceCodesTx(tx, now, usedCodeKeep)
		n += dn
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge browser sessions: %w", err)
	}
	return n, nil
}
