package sessions_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/signet-auth/signet/backchannel"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
)

func outbox(t *testing.T, st storage.Store) map[string]backchannel.Entry {
	t.Helper()
	out := map[string]backchannel.Entry{}
	err := st.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan(backchannel.Bucket, "", func(k string, b []byte) error {
			var e backchannel.Entry
			if err := json.Unmarshal(b, &e); err != nil {
				return err
			}
			out[k] = e
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSessionClients_Outbox: a session records each client it issued a
// code or a device approval to, once; ending it writes one outbox entry per
// client (with a jti) in the same transaction; a withdrawn consent writes
// that client's entry and takes it off the session, so the end does not
// write it again; a session that issued nothing writes nothing.
func TestSessionClients_Outbox(t *testing.T) {
	m, st, clk := newManager(t)
	ctx := t.Context()
	cookie, s, err := m.Start(ctx, "u1", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"notes", "calendar", "notes"} {
		if _, err := m.IssueCode(ctx, sessions.Code{ClientID: id, UserID: "u1", SID: s.SID, Session: s.Key}); err != nil {
			t.Fatal(err)
		}
	}
	dc, _, err := sessions.NewDeviceCode(ctx, st, sessions.DeviceCode{ClientID: "tv", ExpiresAt: clk.Now().Add(10 * 60e9).UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DecideDevice(ctx, sessions.Hash(dc), sessions.DeviceDecision{Approve: true, UserID: "u1", SID: s.SID, Session: s.Key}); err != nil {
		t.Fatal(err)
	}
	got, err := m.Lookup(ctx, cookie)
	if err != nil || !slices.Equal(got.Clients, []string{"notes", "calendar", "tv"}) {
		t.Fatalf("session clients %v (%v)", got.Clients, err)
	}
	err = st.Update(ctx, func(tx storage.Tx) error {
		_, err := sessions.WithdrawConsentTx(tx, "u1", "calendar")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ob := outbox(t, st); len(ob) != 1 || ob["calendar/"+s.SID].Sub != "u1" {
		t.Fatalf("after withdrawing calendar: %v", ob)
	}
	if err := m.End(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	ob := outbox(t, st)
	if len(ob) != 3 {
		t.Fatalf("outbox %v, want calendar, notes and tv once each", ob)
	}
	jtis := map[string]bool{}
	for _, id := range []string{"notes", "calendar", "tv"} {
		e, ok := ob[id+"/"+s.SID]
		if !ok || e.ClientID != id || e.SID != s.SID || e.Sub != "u1" || e.JTI == "" || jtis[e.JTI] {
			t.Errorf("entry for %s: %+v", id, e)
		}
		jtis[e.JTI] = true
	}

	// A session that issued nothing, ended by force logout, writes nothing.
	if _, _, err := m.Start(ctx, "u2", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := sessions.EndUser(ctx, st, "u2"); err != nil {
		t.Fatal(err)
	}
	if n := len(outbox(t, st)); n != 3 {
		t.Errorf("outbox has %d entries after ending a session without clients, want 3", n)
	}
}
