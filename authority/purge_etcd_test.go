package authority_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestPurge_Etcd: the purge job deletes more dead records than etcd allows
// in one transaction (--max-txn-ops, 128 by default) and keeps the live
// ones. One transaction over everything failed there.
func TestPurge_Etcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: "/purge-test/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := newEnv(t, envOptions{algs: []string{"ES256"}, store: st})
	sec := e.userClient("app", nil)
	alice := e.createUser("alice")
	e.createUser("bob")
	const n = 150
	for range n {
		e.login("app", sec, "alice", nil)
	}
	_, keep := e.login("app", sec, "bob", nil)
	// Her logout revokes the families of all of alice's logins.
	if _, err := e.srv.Logout(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	got, err := purge(t, e)
	if err != nil {
		t.Fatalf("Purge = %v", err)
	}
	if want := 3 * n; got != want { // per family: record, token, index entry
		t.Errorf("Purge deleted %d records, want %d", got, want)
	}
	if s, b := e.refresh("app", sec, keep, nil); s != 200 {
		t.Errorf("live family after purge: refresh = %d %v", s, b)
	}
	left := 0
	err = st.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan("refresh_families", "", func(string, []byte) error { left++; return nil })
	})
	if err != nil || left != 1 {
		t.Errorf("families left = %d, %v; want 1 (bob's)", left, err)
	}
}

// TestPurge_Etcd_UnderRefreshLoad (issue 17): a purge run while 16 clients
// refresh continuously deletes every dead record within a bounded number
// of runs. Each record's delete is checked on that record alone; the old
// chunked transactions read more keys than etcd checks one by one, fell
// back to whole-bucket checks, and conflicted with every refresh ("reads
// changed on each of 10 attempts") run after run.
func TestPurge_Etcd_UnderRefreshLoad(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: c.Endpoints(), Prefix: "/purge-load/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := newEnv(t, envOptions{algs: []string{"ES256"}, store: st})
	sec := e.userClient("app", nil)
	const refreshers, dead = 16, 300
	live := make([]string, refreshers)
	for i := range refreshers {
		e.createUser(fmt.Sprint("user", i))
		_, live[i] = e.login("app", sec, fmt.Sprint("user", i), nil)
	}
	// Dead: alice's sessions ended by her logout, and bob's revoked one by
	// one (each puts its access token on the denylist).
	alice := e.createUser("alice")
	e.createUser("bob")
	for range dead / 2 {
		e.login("app", sec, "alice", nil)
		_, rt := e.login("app", sec, "bob", nil)
		if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {rt}}, "app", sec); s != http.StatusOK {
			t.Fatalf("revoke = %d %v", s, b)
		}
	}
	if _, err := e.srv.Logout(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Hour) // every access token expired: the denylist entries are dead too

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for i := range refreshers {
		wg.Go(func() {
			rt := live[i]
			for {
				select {
				case <-stop:
					return
				default:
				}
				req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("app", sec)
				w := httptest.NewRecorder()
				e.srv.ServeHTTP(w, req)
				var body struct {
					RefreshToken string `json:"refresh_token"`
				}
				if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &body) != nil {
					failed.Add(1)
					t.Errorf("refresh during the purge = %d %s", w.Code, w.Body)
					return
				}
				rt = body.RefreshToken
				ok.Add(1)
			}
		})
	}
	// Let every refresher get going before the purge starts.
	for ok.Load() < 2*refreshers && failed.Load() == 0 {
		runtime.Gosched()
	}
	const maxRuns = 3
	runs, deleted := 0, 0
	for ; runs < maxRuns && countDead(t, st) > 0; runs++ {
		before := ok.Load()
		for _, r := range e.srv.Purge(t.Context()) {
			deleted += r.Deleted
			if r.Err != nil {
				t.Errorf("purge run %d, %s: %v", runs+1, r.Kind, r.Err)
			}
		}
		t.Logf("purge run %d: %d refreshes committed meanwhile", runs+1, ok.Load()-before)
	}
	close(stop)
	wg.Wait()
	if n := countDead(t, st); n > 0 {
		t.Fatalf("%d dead records left after %d purge runs under refresh load", n, maxRuns)
	}
	// alice's and bob's families (record, token, index entry each), bob's
	// denylist entries, alice's cutoff.
	if want := 3*dead + dead/2 + 1; deleted != want {
		t.Errorf("deleted %d records, want %d", deleted, want)
	}
	t.Logf("every dead record purged in %d run(s); %d refreshes during the test", runs, ok.Load())
}

// countDead counts the records a purge should delete: families and index
// entries beyond the refreshers' 16 live ones, tokens of families that are
// gone, denylist entries and cutoffs (all expired in the test above).
func countDead(t *testing.T, st storage.Store) int {
	t.Helper()
	n := 0
	err := st.View(t.Context(), func(tx storage.Tx) error {
		fams := map[string]bool{}
		index := 0
		if err := tx.Scan("refresh_families", "", func(k string, _ []byte) error { fams[k] = true; return nil }); err != nil {
			return err
		}
		if err := tx.Scan("user_families", "", func(string, []byte) error { index++; return nil }); err != nil {
			return err
		}
		n = len(fams) - 16 + index - 16
		if err := tx.Scan("refresh_tokens", "", func(k string, v []byte) error {
			var r struct {
				F string `json:"f"`
			}
			if json.Unmarshal(v, &r) != nil || !fams[r.F] {
				n++
			}
			return nil
		}); err != nil {
			return err
		}
		for _, b := range []string{"denylist", "subject_cutoffs"} {
			if err := tx.Scan(b, "", func(string, []byte) error { n++; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
