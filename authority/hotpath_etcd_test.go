package authority_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// countingStore counts the transactions run for a request marked with
// hotPathKey; background work (watch-fed caches, jobs) is not counted.
type countingStore struct {
	storage.Store
	tx atomic.Int64
}

type hotPathKey struct{}

func (c *countingStore) count(ctx context.Context) {
	if ctx.Value(hotPathKey{}) != nil {
		c.tx.Add(1)
	}
}

func (c *countingStore) View(ctx context.Context, fn func(storage.Tx) error) error {
	c.count(ctx)
	return c.Store.View(ctx, fn)
}

func (c *countingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	c.count(ctx)
	return c.Store.Update(ctx, fn)
}

func (c *countingStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	c.count(ctx)
	return c.Store.Batch(ctx, fn)
}

func openEtcd(tb testing.TB) storage.Store {
	c := etcdtest.Start(tb, etcdtest.Options{})
	st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints(), Prefix: "/bench/"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// TestClientCredentials_NoStoreOnHotPath: issuing client_credentials tokens
// reads nothing from the store (clients, keys and limits are in memory), so
// the rate is the same on etcd as on bolt.
func TestClientCredentials_NoStoreOnHotPath(t *testing.T) {
	cs := &countingStore{Store: openEtcd(t)}
	e := newEnv(t, envOptions{algs: []string{"ES256"}, store: cs})
	secret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}})
	ctx := context.WithValue(t.Context(), hotPathKey{}, true)
	for range 50 {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/oauth2/token", strings.NewReader("grant_type=client_credentials&scope=read"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("svc:"+secret)))
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("token = %d %s", w.Code, w.Body)
		}
	}
	if n := cs.tx.Load(); n != 0 {
		t.Errorf("50 client_credentials requests ran %d store transactions, want 0", n)
	}
}

// BenchmarkClientCredentialsEtcd is BenchmarkClientCredentials on a
// one-member embedded etcd instead of a bolt file.
func BenchmarkClientCredentialsEtcd(b *testing.B) {
	e := newEnv(b, envOptions{algs: []string{"ES256"}, store: openEtcd(b)})
	secret := e.createClient(clients.Client{ID: "bench", Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, SigningAlg: "ES256"})
	const body = "grant_type=client_credentials&scope=read"
	req := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("bench:"+secret)))
	w := &discardWriter{h: http.Header{}}
	rd := strings.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		clear(w.h)
		w.status = 0
		e.srv.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkRefreshEtcd is BenchmarkRefresh on a one-member embedded etcd.
func BenchmarkRefreshEtcd(b *testing.B) { benchRefresh(b, openEtcd(b)) }
