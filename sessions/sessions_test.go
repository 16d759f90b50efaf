package sessions_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newManager(t *testing.T) (*sessions.Manager, storage.Store, *clock) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	return sessions.New(st, sessions.Options{IdleTTL: time.Hour, AbsoluteTTL: 3 * time.Hour, Now: clk.Now}), st, clk
}

// TestSessionLifetimes: a session lives while used within the idle time,
// never past the absolute time, and the cookie is never what is stored.
func TestSessionLifetimes(t *testing.T) {
	m, _, clk := newManager(t)
	ctx := context.Background()
	cookie, s, err := m.Start(ctx, "u1", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.SID == "" || s.SID == cookie {
		t.Fatalf("sid %q", s.SID)
	}
	for range 5 { // used every 50 minutes: idle never reached
		clk.Add(50 * time.Minute)
		if _, err := m.Lookup(ctx, cookie); err != nil && clk.Now().Before(time.Date(2026, 5, 1, 15, 0, 0, 0, time.UTC)) {
			t.Fatalf("lookup at %s: %v", clk.Now(), err)
		}
	}
	if _, err := m.Lookup(ctx, cookie); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("past the absolute lifetime: %v", err)
	}
	cookie2, _, _ := m.Start(ctx, "u1", clk.Now())
	clk.Add(61 * time.Minute)
	if _, err := m.Lookup(ctx, cookie2); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("past the idle lifetime: %v", err)
	}
	if _, err := m.Lookup(ctx, "not-a-cookie"); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatal(err)
	}
}

// TestEndUser: force logout ends every session of the user and no other.
func TestEndUser(t *testing.T) {
	m, st, clk := newManager(t)
	ctx := context.Background()
	a1, _, _ := m.Start(ctx, "alice", clk.Now())
	a2, _, _ := m.Start(ctx, "alice", clk.Now())
	b, _, _ := m.Start(ctx, "bob", clk.Now())
	n, err := sessions.EndUser(ctx, st, "alice")
	if err != nil || n != 2 {
		t.Fatalf("EndUser = %d %v", n, err)
	}
	for _, c := range []string{a1, a2} {
		if _, err := m.Lookup(ctx, c); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("alice's session survived: %v", err)
		}
	}
	if _, err := m.Lookup(ctx, b); err != nil {
		t.Errorf("bob's session ended: %v", err)
	}
}

// TestTransactions: a transaction completes once and expires.
func TestTransactions(t *testing.T) {
	m, _, clk := newManager(t)
	ctx := context.Background()
	tx, err := m.NewTransaction(ctx, sessions.Transaction{Kind: "login", Query: "client_id=x"})
	if err != nil || tx.ID == "" || tx.CSRF == "" || tx.ID == tx.CSRF {
		t.Fatalf("new = %+v %v", tx, err)
	}
	if _, err := m.Transaction(ctx, tx.ID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.FinishTransaction(ctx, tx.ID); !ok {
		t.Fatal("first finish")
	}
	if ok, _ := m.FinishTransaction(ctx, tx.ID); ok {
		t.Fatal("second finish succeeded")
	}
	tx2, _ := m.NewTransaction(ctx, sessions.Transaction{Kind: "login"})
	clk.Add(sessions.DefaultTransactionTTL)
	if _, err := m.Transaction(ctx, tx2.ID); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("expired transaction: %v", err)
	}
	if n, err := purged(m.Purge(ctx)); err != nil || n != 1 {
		t.Fatalf("purge = %d %v", n, err)
	}
}

// TestConsents: consent covers a scope set and grows; it belongs to one
// client instance; keeping access while away is allowed only explicitly;
// withdrawal forgets it and ends the user's codes for the client.
func TestConsents(t *testing.T) {
	m, st, _ := newManager(t)
	ctx := context.Background()
	want := func(inst string, offline bool, scopes ...string) sessions.Consent {
		return sessions.Consent{UserID: "u", ClientID: "c", ClientInstance: inst, Scopes: scopes, Offline: offline}
	}
	if ok, _ := m.Consented(ctx, want("i1", false, "openid")); ok {
		t.Fatal("consent before any")
	}
	_ = m.GrantConsent(ctx, want("i1", false, "openid", "email"))
	if ok, _ := m.Consented(ctx, want("i1", false, "email")); !ok {
		t.Fatal("subset not covered")
	}
	if ok, _ := m.Consented(ctx, want("i1", false, "email", "profile")); ok {
		t.Fatal("a new scope was covered")
	}
	if ok, _ := m.Consented(ctx, want("i1", true, "email")); ok {
		t.Fatal("keeping access while away was covered without being allowed")
	}
	if ok, _ := m.Consented(ctx, want("i2", false, "email")); ok {
		t.Fatal("a consent covered another instance of the client id")
	}
	// Another instance replaces the consent instead of adding to it.
	_ = m.GrantConsent(ctx, want("i2", true, "profile"))
	if ok, _ := m.Consented(ctx, want("i2", true, "profile")); !ok {
		t.Fatal("the new instance's consent is not covered")
	}
	if ok, _ := m.Consented(ctx, want("i2", false, "email")); ok {
		t.Fatal("the old instance's scopes carried over to the new one")
	}
	list, err := sessions.Consents(ctx, st, "u")
	if err != nil || len(list) != 1 || list[0].ClientID != "c" {
		t.Fatalf("list = %v %v", list, err)
	}
	// Codes of u for c (and one for another client) in flight.
	cCode, _ := m.IssueCode(ctx, sessions.Code{ClientID: "c", UserID: "u", Scope: "openid"})
	dCode, _ := m.IssueCode(ctx, sessions.Code{ClientID: "d", UserID: "u", Scope: "openid"})
	var found bool
	err = st.Update(ctx, func(tx storage.Tx) error {
		var err error
		found, err = sessions.WithdrawConsentTx(tx, "u", "c")
		return err
	})
	if err != nil || !found {
		t.Fatal(found, err)
	}
	if ok, _ := m.Consented(ctx, want("i2", false, "profile")); ok {
		t.Fatal("consent survived withdrawal")
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		if _, _, err := sessions.CodeTx(tx, cCode); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("a code of the withdrawn client survived: %v", err)
		}
		if _, _, err := sessions.CodeTx(tx, dCode); err != nil {
			t.Errorf("a code of another client ended: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCodes: only the hash is stored, and an unknown or malformed code is
// not found.
func TestCodes(t *testing.T) {
	m, st, _ := newManager(t)
	ctx := context.Background()
	code, err := m.IssueCode(ctx, sessions.Code{ClientID: "c", UserID: "u", Scope: "openid"})
	if err != nil || len(code) != 43 {
		t.Fatalf("code %q %v", code, err)
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get("authorization_codes", code); !errors.Is(err, storage.ErrNotFound) {
			t.Error("the code is stored in the clear")
		}
		c, _, err := sessions.CodeTx(tx, code)
		if err != nil || c.ClientID != "c" || c.ExpiresAt == 0 {
			t.Errorf("CodeTx = %+v %v", c, err)
		}
		if _, _, err := sessions.CodeTx(tx, "short"); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("malformed code: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTransactionsStateless: opening a transaction writes nothing; another
// replica on the same store accepts it; a tampered one or one from another
// store is refused.
func TestTransactionsStateless(t *testing.T) {
	m, st, clk := newManager(t)
	ctx := context.Background()
	tx, err := m.NewTransaction(ctx, sessions.Transaction{Kind: "login", Browser: "b", Query: "client_id=x"})
	if err != nil {
		t.Fatal(err)
	}
	replica := sessions.New(st, sessions.Options{Now: clk.Now})
	got, err := replica.Transaction(ctx, tx.ID)
	if err != nil || got.CSRF != tx.CSRF || got.Browser != "b" || got.Query != "client_id=x" {
		t.Fatalf("replica = %+v %v", got, err)
	}
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for name, id := range map[string]string{
		"tampered body": flip(tx.ID, 10),
		"tampered mac":  tx.ID[:len(tx.ID)-2] + "AA",
		"no mac":        tx.ID[:strings.Index(tx.ID, ".")],
	} {
		if _, err := m.Transaction(ctx, id); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("%s: %v", name, err)
		}
	}
	other, _, _ := newManager(t)
	if _, err := other.Transaction(ctx, tx.ID); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("another store's key accepted it: %v", err)
	}
	n := 0
	_ = st.View(ctx, func(stx storage.Tx) error {
		return stx.Scan("login_transactions_done", "", func(string, []byte) error { n++; return nil })
	})
	if n != 0 {
		t.Errorf("%d records written before completion", n)
	}
}

// TestCodes_PurgeDropsIndex: the index that lets a consent withdrawal end
// a user's codes for a client (user_authorization_codes) loses its entry
// when purge deletes the code, so it does not grow forever.
func TestCodes_PurgeDropsIndex(t *testing.T) {
	m, st, clk := newManager(t)
	ctx := context.Background()
	if _, err := m.IssueCode(ctx, sessions.Code{ClientID: "c", UserID: "u", Scope: "openid"}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		_ = st.View(ctx, func(tx storage.Tx) error {
			return tx.Scan("user_authorization_codes", "", func(string, []byte) error { n++; return nil })
		})
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("index entries after issue = %d, want 1", n)
	}
	clk.Add(sessions.DefaultCodeTTL + 2*time.Hour)
	if err := storage.PurgeErr(m.Purge(ctx)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("index entries after purge = %d, want 0", n)
	}
}

// purged sums the records a purge deleted and joins its errors.
func purged(reports []storage.Purged) (int, error) {
	n := 0
	for _, r := range reports {
		n += r.Deleted
	}
	return n, storage.PurgeErr(reports)
}
