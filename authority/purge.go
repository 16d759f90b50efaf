package authority

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Purge deletes what can no longer matter and reports one storage.Purged
// per kind of record:
//
//   - "refresh_sessions": refresh token families that expired or were
//     revoked, with their tokens and user index entries;
//   - "denylist": denylist entries whose token has expired, and subject
//     cutoffs older than the longest access token of a subject that has no
//     session left.
//
// It finds what is dead in one consistent read, then deletes each record
// on a check of its own value (storage.PurgeExpired): nothing a live
// refresh writes makes it conflict, so it finishes under any load. A dead
// record stays dead (a revoked or expired family never lives again; a
// cutoff only moves forward while a family depends on it), so a record
// unchanged since the read may be deleted on that read's judgement. Run it
// on a schedule (signet serve runs it with the key purge).
func (s *Server) Purge(ctx context.Context) []storage.Purged {
	now := s.cfg.Now()
	var fams, toks, index, deny storage.Expired
	var oldCutoffs []string // subjects whose cutoff no access token needs any more
	err := s.cfg.Store.View(ctx, func(tx storage.Tx) error {
		fams, toks, index, deny = storage.Expired{Bucket: refreshFamiliesBucket}, storage.Expired{Bucket: refreshTokensBucket},
			storage.Expired{Bucket: userFamiliesBucket}, storage.Expired{Bucket: denylistBucket}
		oldCutoffs = oldCutoffs[:0]
		cutoffs := map[string][]byte{}
		if err := tx.Scan(cutoffsBucket, "", func(k string, v []byte) error {
			cutoffs[k] = v
			if c, err := strconv.ParseInt(string(v), 10, 64); err != nil || s.cutoffDrop(c) <= now.Unix() {
				oldCutoffs = append(oldCutoffs, k)
			}
			return nil
		}); err != nil {
			return err
		}
		live := map[string]bool{}
		dead := map[string]time.Time{} // family id → since when
		ftx := cutoffTx{tx, cutoffs}   // f.live reads cutoffs: from memory
		if err := tx.Scan(refreshFamiliesBucket, "", func(k string, v []byte) error {
			var f familyRecord
			if json.Unmarshal(v, &f) != nil {
				fams.Add(k, v, now)
				return nil
			}
			ok, err := f.live(ftx, now)
			if err != nil {
				return err
			}
			if ok {
				live[k] = true
				return nil
			}
			since := f.deadSince(cutoffs)
			dead[k] = since
			fams.Add(k, v, since)
			return nil
		}); err != nil {
			return err
		}
		sinceOf := func(fam string) time.Time {
			if t, ok := dead[fam]; ok {
				return t
			}
			return now // no family at all: an orphan nothing can use
		}
		if err := tx.Scan(refreshTokensBucket, "", func(k string, v []byte) error {
			var r refreshRecord
			if json.Unmarshal(v, &r) != nil || !live[r.Family] {
				toks.Add(k, v, sinceOf(r.Family))
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Scan(userFamiliesBucket, "", func(k string, v []byte) error {
			if fam := k[strings.LastIndexByte(k, '/')+1:]; !live[fam] { // user id "/" family id
				index.Add(k, v, sinceOf(fam))
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Scan(denylistBucket, "", func(k string, v []byte) error {
			exp, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				deny.Add(k, v, now)
			} else if drop := s.jtiDrop(exp); drop <= now.Unix() {
				deny.Add(k, v, time.Unix(drop, 0))
			}
			return nil
		})
	})
	if err != nil {
		err = fmt.Errorf("purge: read sessions and denylist: %w", err)
		return []storage.Purged{{Kind: "refresh_sessions", Err: err}, {Kind: "denylist", Err: err}}
	}
	// Tokens and index entries before their families: a run cut short
	// leaves families whose tokens the next run still finds dead.
	sessions := storage.PurgeExpired(ctx, s.cfg.Store, "refresh_sessions", &toks, &index, &fams)
	denied := storage.PurgeExpired(ctx, s.cfg.Store, "denylist", &deny)
	if denied.Err == nil && sessions.Err == nil {
		n, oldest, err := s.purgeCutoffs(ctx, oldCutoffs, now)
		denied.Deleted += n
		if !oldest.IsZero() && (denied.Oldest.IsZero() || oldest.Before(denied.Oldest)) {
			denied.Oldest = oldest
		}
		denied.Err = err
	}
	if denied.Deleted > 0 {
		s.feed.invalidate()
	}
	return []storage.Purged{sessions, denied, s.auth.Purge(ctx)} // and private_key_jwt jtis past their exp
}

// purgeCutoffs deletes the cutoffs of subjects that have no refresh token
// family left, one small transaction per subject. A cutoff must outlive
// every family of its subject: a family records the cutoff it was created
// under (LoginCutoff) and is live only while the cutoff is still that
// value, so deleting it would end the sessions begun after the last logout
// and revive those it ended. The transaction reads the subject's index
// entries, so a login committing meanwhile makes it run again.
func (s *Server) purgeCutoffs(ctx context.Context, subs []string, now time.Time) (int, time.Time, error) {
	n := 0
	var oldest time.Time
	for _, sub := range subs {
		deleted, since := false, time.Time{}
		err := s.cfg.Store.Update(ctx, func(tx storage.Tx) error {
			deleted = false
			b, err := tx.Get(cutoffsBucket, sub)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			c, err := strconv.ParseInt(string(b), 10, 64)
			if err == nil {
				if s.cutoffDrop(c) > now.Unix() {
					return nil
				}
				since = time.Unix(s.cutoffDrop(c), 0)
			}
			sessions := false
			errStop := errors.New("stop")
			err = tx.Scan(userFamiliesBucket, sub+"/", func(string, []byte) error { sessions = true; return errStop })
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
			if sessions {
				return nil // kept while a session depends on it
			}
			deleted = true
			return tx.Delete(cutoffsBucket, sub)
		})
		if err != nil {
			return n, oldest, fmt.Errorf("purge cutoff of %s: %w", sub, err)
		}
		if deleted {
			n++
			if oldest.IsZero() || since.Before(oldest) {
				oldest = since
			}
		}
	}
	return n, oldest, nil
}

// cutoffTx serves the subject cutoffs a purge read at the start of its
// View from memory, so judging each family is not one more store read.
type cutoffTx struct {
	storage.Tx
	cutoffs map[string][]byte
}

func (c cutoffTx) Get(bucket, key string) ([]byte, error) {
	if bucket != cutoffsBucket {
		return c.Tx.Get(bucket, key)
	}
	v, ok := c.cutoffs[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return v, nil
}

// deadSince is when f, which is not live, stopped being usable.
func (f *familyRecord) deadSince(cutoffs map[string][]byte) time.Time {
	t := time.Unix(0, f.expiresAt())
	if f.RevokedAt != 0 && f.RevokedAt < f.expiresAt() {
		t = time.Unix(0, f.RevokedAt)
	}
	if c, err := strconv.ParseInt(string(cutoffs[f.UserID]), 10, 64); err == nil && f.LoginCutoff != nil && *f.LoginCutoff != c {
		if ct := time.Unix(c, 0); ct.Before(t) {
			t = ct // ended by a logout
		}
	}
	return t
}
