package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/schema"
	"github.com/signet-auth/signet/storage"
)

// Buckets whose records restore compares; their formats belong to authority.
const (
	clientsBucket  = "clients"
	usersBucket    = "users"
	familiesBucket = "refresh_families"
	denylistBucket = "denylist"
	cutoffsBucket  = "subject_cutoffs"
)

// State is what restore compares between the store it replaces and
// the backup it restores.
type State struct {
	Empty   bool // no records but the schema version
	keys    map[string]keys.Info
	buckets map[string]map[string][]byte // clients, users, families, denylist, cutoffs
}

// ReadState reads the State of st.
func ReadState(ctx context.Context, st storage.Store) (State, error) {
	s := State{keys: map[string]keys.Info{}, buckets: map[string]map[string][]byte{}}
	infos, err := keys.List(ctx, st)
	if err != nil {
		return s, err
	}
	for _, k := range infos {
		s.keys[k.KID] = k
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		names, err := storage.Buckets(tx)
		if err != nil {
			return err
		}
		s.Empty = len(names) == 0 || slices.Equal(names, []string{schema.Bucket})
		for _, b := range []string{clientsBucket, usersBucket, familiesBucket, denylistBucket, cutoffsBucket} {
			m := map[string][]byte{}
			if err := tx.Scan(b, "", func(k string, v []byte) error { m[k] = v; return nil }); err != nil {
				return err
			}
			s.buckets[b] = m
		}
		return nil
	})
	return s, err
}

// Diff is what a restore undoes: what differs between the store it replaces
// and the backup it restores.
type Diff struct {
	RevokeAgain     []string // revoked in the current store, not in the backup: revoked again
	purgedBack      []string // purged from the current store, back from the backup
	newerKeys       []string // in the current store only: gone
	clientsBack     []string // deleted since the backup: back
	clientsChanged  []string // changed since the backup: the backup's version is back
	clientsLost     []string // created after the backup: gone
	usersBack       []string
	usersChanged    []string
	usersLost       []string
	sessionsChanged int // refresh families that differ
	Denials         int // denylist entries and subject cutoffs re-applied
}

// Compare says what restoring restored over cur undoes; cur is nil when
// there was no store.
func Compare(cur *State, restored State) Diff {
	var r Diff
	if cur == nil {
		return r
	}
	for kid, k := range cur.keys {
		b, ok := restored.keys[kid]
		switch {
		case !ok:
			r.newerKeys = append(r.newerKeys, k.Alg+":"+kid+" ("+string(k.State)+")")
		case k.State == keys.StateRevoked && b.State != keys.StateRevoked:
			r.RevokeAgain = append(r.RevokeAgain, kid)
		}
	}
	for kid, b := range restored.keys {
		if _, ok := cur.keys[kid]; !ok {
			r.purgedBack = append(r.purgedBack, b.Alg+":"+kid+" ("+string(b.State)+" in the backup)")
		}
	}
	diff := func(bucket string) (back, changed, lost []string) {
		c, b := cur.buckets[bucket], restored.buckets[bucket]
		for k, v := range b {
			cv, ok := c[k]
			switch {
			case !ok:
				back = append(back, k)
			case !bytes.Equal(cv, v):
				changed = append(changed, k)
			}
		}
		for k := range c {
			if _, ok := b[k]; !ok {
				lost = append(lost, k)
			}
		}
		return back, changed, lost
	}
	r.clientsBack, r.clientsChanged, r.clientsLost = diff(clientsBucket)
	r.usersBack, r.usersChanged, r.usersLost = diff(usersBucket)
	b, ch, l := diff(familiesBucket)
	r.sessionsChanged = len(b) + len(ch) + len(l)
	for _, s := range [][]string{r.RevokeAgain, r.purgedBack, r.newerKeys, r.clientsBack, r.clientsChanged, r.clientsLost, r.usersBack, r.usersChanged, r.usersLost} {
		slices.Sort(s)
	}
	return r
}

// ReapplyDenials copies the denylist entries and subject cutoffs of the
// replaced store into the restored one, keeping the later of two values:
// they only ever refuse tokens, so applying them again is always safe.
func ReapplyDenials(ctx context.Context, st storage.Store, cur *State) (int, error) {
	if cur == nil {
		return 0, nil
	}
	n := 0
	err := st.Update(ctx, func(tx storage.Tx) error {
		n = 0
		for _, b := range []string{denylistBucket, cutoffsBucket} {
			for k, v := range cur.buckets[b] {
				old, err := tx.Get(b, k)
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				if err == nil && unixAtLeast(old, v) {
					continue // the restored value is as late
				}
				if err := tx.Put(b, k, v); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// unixAtLeast compares two decimal Unix times; unreadable values are not "at least".
func unixAtLeast(a, b []byte) bool {
	x, err1 := strconv.ParseInt(string(a), 10, 64)
	y, err2 := strconv.ParseInt(string(b), 10, 64)
	return err1 == nil && err2 == nil && x >= y
}

// Print tells the operator what to do before serving the restored store.
func (r Diff) Print(w io.Writer, hadStore bool, createdAt time.Time) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "!!! BEFORE SERVING THIS STORE !!!")
	if !hadStore {
		fmt.Fprintf(w, "!!! There was no store to compare with. Everything changed after %s is undone:\n", createdAt.Format(time.RFC3339))
		fmt.Fprintln(w, "!!!  - keys revoked since are published and trusted again: revoke them again (signet keys revoke KID)")
		fmt.Fprintln(w, "!!!  - keys rotated since: rotate (signet keys rotate) so tokens are signed by a key that is not old")
		fmt.Fprintln(w, "!!!  - clients and users deleted or disabled since are back, rotated secrets and passwords are the old ones")
		fmt.Fprintln(w, "!!!  - sessions ended since (logout, refresh token revocation) work again: signet users logout USER")
		fmt.Fprintln(w, "!!!  - tokens signed by keys created after the backup no longer verify")
		return
	}
	line := func(what string, items []string, todo string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "!!! %s: %s\n!!!     %s\n", what, strings.Join(items, ", "), todo)
	}
	line("re-applied: keys revoked in the replaced store, revoked again", r.RevokeAgain, "done (the pending key of the algorithm was promoted where needed)")
	line("keys the replaced store had purged, back from the backup", r.purgedBack, "rotate before serving: signet keys rotate --force (retired keys are purged again when they expire)")
	line("keys of the replaced store not in the backup (tokens they signed no longer verify)", r.newerKeys, "nothing to do unless those tokens matter: their holders must get new ones")
	line("clients deleted since the backup, back", r.clientsBack, "delete them again: signet clients delete ID")
	line("clients changed since the backup (secret, scopes, disabled), the backup's version is back", r.clientsChanged, "review them; rotate their secrets: signet clients rotate-secret ID")
	line("clients created after the backup, gone", r.clientsLost, "create them again")
	line("users deleted since the backup, back", r.usersBack, "delete them again: signet users delete ID")
	line("users changed since the backup (password, disabled), the backup's version is back", r.usersChanged, "review them; set passwords again and log them out: signet users logout ID")
	line("users created after the backup, gone", r.usersLost, "create them again")
	if r.sessionsChanged > 0 {
		fmt.Fprintf(w, "!!! %d refresh token sessions differ from the replaced store: sessions ended since the backup work again\n!!!     log out the users concerned: signet users logout ID\n", r.sessionsChanged)
	}
	if r.Denials > 0 {
		fmt.Fprintf(w, "!!! re-applied: %d revoked tokens and subject cutoffs of the replaced store\n", r.Denials)
	}
	fmt.Fprintln(w, "!!! The replaced store is kept: compare with `signet audit --data-dir` on a copy of it for what else changed.")
}
