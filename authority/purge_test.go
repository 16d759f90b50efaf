package authority_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/signet-auth/signet/storage"
)

// purge runs one purge and returns how many records it deleted in all.
func purge(t testing.TB, e *env) (int, error) {
	t.Helper()
	reports := e.srv.Purge(t.Context())
	n := 0
	for _, r := range reports {
		n += r.Deleted
	}
	return n, storage.PurgeErr(reports)
}

// TestPurge_CutoffOutlivesSessions: a subject's cutoff is not purged while
// a session of the subject exists. Each family records the cutoff it began
// under and is live only while the cutoff is still that value: purging
// alice's cutoff once no access token needed it (the old rule) ended the
// session she began after her logout.
func TestPurge_CutoffOutlivesSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("app", nil)
	alice := e.createUser("alice")
	e.login("app", sec, "alice", nil)
	if _, err := e.srv.Logout(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Second)
	_, after := e.login("app", sec, "alice", nil) // begun after the logout
	e.clock.Add(2 * time.Hour)                    // every access token and the cutoff's use for them have expired
	if _, err := purge(t, e); err != nil {
		t.Fatal(err)
	}
	status, body := e.refresh("app", sec, after, nil)
	if status != http.StatusOK {
		t.Fatalf("session begun after the logout, after a purge: refresh = %d %v, want 200", status, body)
	}
	// Once her last session is gone, so is the cutoff.
	if _, err := e.srv.Logout(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Hour)
	if _, err := purge(t, e); err != nil {
		t.Fatal(err)
	}
	left := 0
	err := e.store.View(t.Context(), func(tx storage.Tx) error {
		for _, b := range []string{"subject_cutoffs", "refresh_families", "refresh_tokens", "user_families"} {
			if err := tx.Scan(b, "", func(string, []byte) error { left++; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || left != 0 {
		t.Errorf("records left after her last logout and a purge: %d, %v; want 0", left, err)
	}
}
