package login_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/storage"
)

// flakyStore is a real bolt store whose reads and writes of one bucket
// (every bucket when it is "") fail with err while it is set, as etcd's do
// when it loses its leader or quorum: the transaction is rolled back.
type flakyStore struct {
	storage.Store
	mu     sync.Mutex
	err    error
	bucket string
}

func (s *flakyStore) set(bucket string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bucket, s.err = bucket, err
}

func (s *flakyStore) wrap(fn func(storage.Tx) error) func(storage.Tx) error {
	s.mu.Lock()
	bucket, err := s.bucket, s.err
	s.mu.Unlock()
	if err == nil {
		return fn
	}
	return func(tx storage.Tx) error { return fn(flakyTx{tx, bucket, err}) }
}

func (s *flakyStore) View(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.View(ctx, s.wrap(fn))
}

func (s *flakyStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Update(ctx, s.wrap(fn))
}

func (s *flakyStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Batch(ctx, s.wrap(fn))
}

type flakyTx struct {
	storage.Tx
	bucket string
	err    error
}

func (t flakyTx) fails(bucket string) error {
	if t.bucket == "" || t.bucket == bucket {
		return fmt.Errorf("injected: etcd range %s: %w", bucket, t.err)
	}
	return nil
}

func (t flakyTx) Get(bucket, key string) ([]byte, error) {
	if err := t.fails(bucket); err != nil {
		return nil, err
	}
	return t.Tx.Get(bucket, key)
}

func (t flakyTx) Put(bucket, key string, value []byte) error {
	if err := t.fails(bucket); err != nil {
		return err
	}
	return t.Tx.Put(bucket, key, value)
}

func (t flakyTx) Delete(bucket, key string) error {
	if err := t.fails(bucket); err != nil {
		return err
	}
	return t.Tx.Delete(bucket, key)
}

func (t flakyTx) Scan(bucket, prefix string, fn func(string, []byte) error) error {
	if err := t.fails(bucket); err != nil {
		return err
	}
	return t.Tx.Scan(bucket, prefix, fn)
}

// TestStoreUnavailable_Pages (issue 17): while the store does not answer
// (etcd without a leader or quorum, a request deadline, a transaction that
// kept conflicting: the errors authority.ServerError answers 503 at the
// JSON endpoints), every page of the hosted login (authorize, sign-in,
// consent, sign-out and its confirmation, the device pages) answers 503
// with Retry-After and a "try again in a moment" page, never 500 and
// never internal detail; the outage is one WARN line per episode, not an
// error line per request. A user read that fails is an outage too, not a
// signed-out user (the page said "sign in" and sign-out forgot to end the
// session).
func TestStoreUnavailable_Pages(t *testing.T) {
	outages := []struct {
		name string
		err  error
	}{
		{"unavailable", fmt.Errorf("etcdserver: request timed out, possibly due to previous leader failure: %w", storage.ErrUnavailable)},
		{"deadline", context.DeadlineExceeded},
		{"conflict", fmt.Errorf("reads changed on each of 10 attempts: %w", storage.ErrConflict)},
	}
	for _, outage := range outages {
		t.Run(outage.name, func(t *testing.T) {
			logs := &signettest.LogBuffer{}
			var fs *flakyStore
			e := newEnv(t, envOptions{log: logs, wrap: func(st storage.Store) storage.Store {
				fs = &flakyStore{Store: st}
				return fs
			}})
			e.webClient("web", nil)
			e.thirdParty("third", nil)
			e.deviceClient("tv", nil)
			_, challenge := signettest.PKCE()

			// Forms shown while the store answered, submitted during the outage.
			b := e.browser()
			loginForm := b.Authorize(authzQuery(challenge, nil))
			signedIn := e.browser()
			consentForm := consentPage(t, signedIn, "third", "openid", challenge)
			logoutForm := signedIn.Get(e.issuer + "/oauth2/logout")
			deviceForm := b.Get(e.issuer + authority.DevicePath)
			for name, p := range map[string]page{"login": loginForm, "consent": consentForm, "logout": logoutForm, "device": deviceForm} {
				if p.Status != http.StatusOK {
					t.Fatalf("%s page with the store up = %d:\n%s", name, p.Status, p.Body)
				}
			}
			submit := func(b *browser, p page, extra url.Values) func() page {
				return func() page { return b.Submit(p, extra) }
			}
			rows := []struct {
				name   string
				bucket string // "": every bucket fails
				load   func() page
				// stateless: the page needs no store (a new browser's sign-in
				// and code pages: the transaction is sealed in the form), so it
				// is served through the outage.
				stateless bool
			}{
				{"authorize (GET), new browser", "", func() page { return e.browser().Authorize(authzQuery(challenge, nil)) }, true},
				{"authorize (POST), new browser", "", func() page {
					return e.browser().Post(e.issuer+"/oauth2/authorize", authzQuery(challenge, nil))
				}, true},
				{"authorize, signed in", "", func() page { return signedIn.Authorize(authzQuery(challenge, nil)) }, false},
				{"authorize, the user read fails", "users", func() page { return signedIn.Authorize(authzQuery(challenge, nil)) }, false},
				{"sign-in form", "", submit(b, loginForm, url.Values{"username": {"alice"}, "password": {alicePassword}}), false},
				{"consent form", "", submit(signedIn, consentForm, url.Values{"decision": {"allow"}}), false},
				{"sign-out page", "", func() page { return signedIn.Get(e.issuer + "/oauth2/logout") }, false},
				{"sign-out page, the user read fails", "users", func() page { return signedIn.Get(e.issuer + "/oauth2/logout") }, false},
				{"sign-out confirmation", "", submit(signedIn, logoutForm, url.Values{"decision": {"logout"}}), false},
				{"device code page, new browser", "", func() page { return e.browser().Get(e.issuer + authority.DevicePath) }, true},
				{"device code form", "", submit(b, deviceForm, url.Values{"user_code": {"BCDF-GHJK"}}), false},
				{"device sign-in form", "", func() page {
					_, v := signettest.FormOf(t, deviceForm)
					v.Set("username", "alice")
					v.Set("password", alicePassword)
					return b.Post(e.issuer+authority.DevicePath+"/login", v)
				}, false},
				{"device consent form", "", func() page {
					_, v := signettest.FormOf(t, deviceForm)
					v.Set("decision", "allow")
					return b.Post(e.issuer+authority.DevicePath+"/consent", v)
				}, false},
			}
			for range 2 {
				for _, r := range rows {
					fs.set(r.bucket, outage.err)
					p := r.load()
					fs.set("", nil)
					if r.stateless {
						if p.Status != http.StatusOK {
							t.Errorf("%s with the store down = %d, want 200 (it needs no store):\n%s", r.name, p.Status, p.Body)
						}
						continue
					}
					if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" {
						t.Errorf("%s with the store down = %d (Retry-After %q), want 503 with Retry-After:\n%s", r.name, p.Status, p.Header.Get("Retry-After"), p.Body)
						continue
					}
					if !strings.Contains(p.Body, "Try again in a moment") || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
						t.Errorf("%s: not the try-again page (%s):\n%s", r.name, p.Header.Get("Content-Type"), p.Body)
					}
					if strings.Contains(p.Body, "injected") || strings.Contains(p.Body, "goroutine") || strings.Contains(p.Body, "storage:") {
						t.Errorf("%s: internal detail on the page:\n%s", r.name, p.Body)
					}
					if p.Header.Get("Content-Security-Policy") == "" {
						t.Errorf("%s: the page lost its security headers", r.name)
					}
				}
			}
			out := logs.String()
			if n := strings.Count(out, `"level":"ERROR"`); n > 0 {
				t.Errorf("%d ERROR lines for a store outage:\n%s", n, out)
			}
			if n := strings.Count(out, `"condition":"store_unavailable"`); n != 1 {
				t.Errorf("the outage was logged %d times for many refused pages, want once:\n%s", n, out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, `"condition":"store_unavailable"`) && !strings.Contains(line, `"level":"WARN"`) {
					t.Errorf("outage line %s: want WARN", line)
				}
			}
			e.clock.Add(2 * time.Minute) // a quiet minute: the next outage is a new episode
			fs.set("", outage.err)
			p := signedIn.Authorize(authzQuery(challenge, nil))
			fs.set("", nil)
			if p.Status != http.StatusServiceUnavailable {
				t.Fatalf("authorize in a second outage = %d, want 503", p.Status)
			}
			if n := strings.Count(logs.String(), `"condition":"store_unavailable"`); n != 2 {
				t.Errorf("a second episode after a quiet minute: %d outage lines in all, want 2", n)
			}

			// Once the store answers, the forms refused during the outage work:
			// nothing was spent.
			if p := b.login(loginForm, "alice", alicePassword); p.Location == nil || p.Location.Query().Get("code") == "" {
				t.Errorf("the sign-in form refused during the outage, once the store answers = %d, want a code:\n%s", p.Status, p.Body)
			}
		})
	}
}

// lateStore is the store as a request sees it once its deadline has
// passed before it asks (the CPU spent the request's time): while late is
// set, every call is made with a context whose deadline is gone, and the
// real store answers as it would.
type lateStore struct {
	storage.Store
	late atomic.Bool
}

func (s *lateStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if !s.late.Load() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, time.Now().Add(-time.Millisecond))
}

func (s *lateStore) View(ctx context.Context, fn func(storage.Tx) error) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.Store.View(ctx, fn)
}

func (s *lateStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.Store.Update(ctx, fn)
}

func (s *lateStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.Store.Batch(ctx, fn)
}

// TestStoreUnavailable_DeadlineNotBlamedOnStore: a request whose deadline
// passed before it asked the store (on a CPU-bound server, a burst of
// password sign-ins outlives the request deadline) is answered as a store
// outage is (503, Retry-After, the try-again page), but its refusal line
// names the request's deadline, not the store: signet-load flows saw
// "store_unavailable" with a healthy store and the time spent on argon2id.
func TestStoreUnavailable_DeadlineNotBlamedOnStore(t *testing.T) {
	logs := &signettest.LogBuffer{}
	var ls *lateStore
	e := newEnv(t, envOptions{log: logs, wrap: func(st storage.Store) storage.Store {
		ls = &lateStore{Store: st}
		return ls
	}})
	e.webClient("web", nil)
	_, challenge := signettest.PKCE()
	b := e.browser()
	form := b.Authorize(authzQuery(challenge, nil))
	ls.late.Store(true)
	p := b.login(form, "alice", alicePassword)
	ls.late.Store(false)
	if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" || !strings.Contains(p.Body, "Try again in a moment") {
		t.Fatalf("sign-in whose deadline passed = %d (Retry-After %q), want the 503 try-again page:\n%s", p.Status, p.Header.Get("Retry-After"), p.Body)
	}
	out := logs.String()
	if !strings.Contains(out, `"condition":"request_deadline"`) || strings.Contains(out, `"condition":"store_unavailable"`) {
		t.Errorf("the refusal blames the store, or names nothing:\n%s", out)
	}
	if strings.Contains(out, `"level":"ERROR"`) {
		t.Errorf("an ERROR line for a request that ran out of time:\n%s", out)
	}
}
