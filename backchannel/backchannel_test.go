package backchannel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/backchannel"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

type env struct {
	st  storage.Store
	reg *clients.Registry

	mu   sync.Mutex
	jtis map[string]int
	keys map[string]int // client "/" sid
	// onReceive runs in the handler before it answers 200.
	onReceive func()
	down      bool // answer 503
	hits      int  // requests answered 503
	srv       *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "bc.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{st: st, reg: clients.New(st, clients.Options{}), jtis: map[string]int{}, keys: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		if e.down {
			e.hits++
			e.mu.Unlock()
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		e.mu.Unlock()
		tok := r.PostFormValue("logout_token")
		var c backchannel.LogoutClaims
		if err := json.Unmarshal([]byte(tok), &c); err != nil { // the test signer sends the claims as they are
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.jtis[c.JTI]++
		e.keys[c.Aud+"/"+c.SID]++
		f := e.onReceive
		e.mu.Unlock()
		if f != nil {
			f()
		}
	}))
	t.Cleanup(e.srv.Close)
	_, _, err = e.reg.Create(t.Context(), clients.Client{ID: "app", GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid"},
		Audiences: []string{"api"}, RedirectURIs: []string{"https://app.example/cb"}, BackchannelLogoutURI: e.srv.URL + "/bc"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// run starts a worker that always leads (two of them model an old and a
// new leader during a handover) and returns its stop function.
func (e *env) run(t *testing.T, tune func(*backchannel.Config)) context.CancelFunc {
	ctx, cancel := context.WithCancel(t.Context())
	cfg := backchannel.Config{Store: e.st, Clients: e.reg, Issuer: "http://127.0.0.1",
		Sign:    func(_ context.Context, _ string, claims []byte) (string, error) { return string(claims), nil },
		Fetcher: outbound.New(outbound.Options{AllowLoopback: true, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}),
		Lead: func(ctx context.Context) (context.Context, context.CancelFunc, bool) {
			return ctx, func() {}, true
		},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Poll: 20 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	done := make(chan struct{})
	go func() { defer close(done); backchannel.Run(ctx, cfg) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func (e *env) enqueue(t *testing.T, n int) {
	t.Helper()
	err := e.st.Update(t.Context(), func(tx storage.Tx) error {
		for i := range n {
			if err := backchannel.EnqueueTx(tx, "user", fmt.Sprintf("sid%02d", i), []string{"app", "app"}, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) outbox(t *testing.T) int {
	n := 0
	_ = e.st.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan(backchannel.Bucket, "", func(string, []byte) error { n++; return nil })
	})
	return n
}

func (e *env) waitEmpty(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.outbox(t) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries left", e.outbox(t))
		}
	}
}

// TestWorker_TwoLeadersSendOnce: two workers that both believe they lead
// (a handover) share one outbox: the conditional claim lets one send each
// entry; an entry enqueued twice for the same session and client is one.
func TestWorker_TwoLeadersSendOnce(t *testing.T) {
	e := newEnv(t)
	e.enqueue(t, 40)
	e.enqueue(t, 40) // the same sessions again: kept once
	if n := e.outbox(t); n != 40 {
		t.Fatalf("outbox holds %d, want 40", n)
	}
	e.run(t, nil)
	e.run(t, nil)
	e.waitEmpty(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.keys) != 40 {
		t.Errorf("%d sessions told, want 40", len(e.keys))
	}
	for k, n := range e.keys {
		if n != 1 {
			t.Errorf("%s told %d times", k, n)
		}
	}
}

// TestWorker_LostDeleteRepeatsOnceSameJTI: the worker stops after the RP
// received the token and before the outcome was recorded (a crash, or
// the answer lost): the next leader
// sends it again once its claim lapses, with the same jti, so the RP can
// drop it; then it is gone.
func TestWorker_LostDeleteRepeatsOnceSameJTI(t *testing.T) {
	e := newEnv(t)
	e.enqueue(t, 1)
	received := make(chan struct{})
	var once sync.Once
	e.mu.Lock()
	e.onReceive = func() { once.Do(func() { close(received); time.Sleep(200 * time.Millisecond) }) }
	e.mu.Unlock()
	stop := e.run(t, func(c *backchannel.Config) { c.ClaimFor = 300 * time.Millisecond })
	<-received
	stop()
	if e.outbox(t) != 1 {
		t.Fatal("the entry was deleted although the worker stopped before the delete")
	}
	e.mu.Lock()
	e.onReceive = nil
	e.mu.Unlock()
	e.run(t, nil)
	e.waitEmpty(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.jtis) != 1 {
		t.Errorf("jtis %v, want one jti sent twice", e.jtis)
	}
	for _, n := range e.jtis {
		if n != 2 {
			t.Errorf("sent %d times, want 2 (the repeat after a lost delete)", n)
		}
	}
}

// TestWorker_GiveUp: a failing RP is retried with growing delays, not on
// every poll; an entry older than GiveUpAfter is dropped.
func TestWorker_GiveUp(t *testing.T) {
	e := newEnv(t)
	e.mu.Lock()
	e.down = true
	e.mu.Unlock()
	e.enqueue(t, 1)
	e.run(t, func(c *backchannel.Config) { c.GiveUpAfter = 300 * time.Millisecond })
	e.waitEmpty(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	// 20ms, 40ms, 50ms, 50ms, ...: a handful of attempts in 300ms, not one per poll.
	if e.hits < 3 || e.hits > 12 {
		t.Errorf("%d attempts in the give-up age, want a handful", e.hits)
	}
}

// TestClaims: the logout token's members: events, sid and sub, no nonce.
func TestClaims(t *testing.T) {
	c := backchannel.Claims("https://id.example", &backchannel.Entry{ClientID: "app", Sub: "u", SID: "s", JTI: "j"}, time.Unix(1000, 0), 2*time.Minute)
	b, _ := json.Marshal(c)
	want := `{"iss":"https://id.example","sub":"u","aud":"app","iat":1000,"exp":1120,"jti":"j","sid":"s","events":{"http://schemas.openid.net/event/backchannel-logout":{}}}`
	if string(b) != want {
		t.Errorf("claims\n%s\nwant\n%s", b, want)
	}
	if strings.Contains(string(b), "nonce") {
		t.Error("nonce")
	}
}
