package authority_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

// bodyWriter is a ResponseWriter that keeps the status and the body.
type bodyWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *bodyWriter) Header() http.Header { return w.h }
func (w *bodyWriter) Write(b []byte) (int, error) {
	w.body = append(w.body, b...)
	return len(b), nil
}
func (w *bodyWriter) WriteHeader(s int) { w.status = s }

func refreshTokenOf(body []byte) string {
	_, rest, ok := strings.Cut(string(body), `"refresh_token":"`)
	if !ok {
		return ""
	}
	rt, _, _ := strings.Cut(rest, `"`)
	return rt
}

const benchParallelism = 32

// BenchmarkRefresh is the refresh_token grant through the server's
// ServeHTTP with many goroutines, each refreshing its own session, on a
// bbolt file in b.TempDir(): routing, client authentication, the batched
// rotation transaction (fsync'd), signing (EdDSA) and the response.
// Compare with BenchmarkBoltBatch.
func BenchmarkRefresh(b *testing.B) { benchRefresh(b, nil) }

// benchRefresh runs BenchmarkRefresh on st (nil: a bolt file).
func benchRefresh(b *testing.B, st storage.Store) {
	e := newEnv(b, envOptions{algs: []string{"EdDSA"}, store: st})
	secret := e.userClient("app", nil)
	e.createUser("alice")
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("app:"+secret))
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		_, rt := e.login("app", secret, "alice", nil)
		w := &bodyWriter{h: http.Header{}}
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader("grant_type=refresh_token&refresh_token="+rt))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			clear(w.h)
			w.status, w.body = 0, w.body[:0]
			e.srv.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d: %s", w.status, w.body)
			}
			rt = refreshTokenOf(w.body)
		}
	})
}

// BenchmarkBoltBatch is the floor under BenchmarkRefresh: bare bbolt Batch
// transactions on a file in b.TempDir() with the same parallelism, each
// writing what one refresh writes (a token record and a family record of
// the same sizes), and nothing else.
func BenchmarkBoltBatch(b *testing.B) {
	// Measure the records one refresh writes.
	e := newEnv(b, envOptions{algs: []string{"EdDSA"}})
	secret := e.userClient("app", nil)
	e.createUser("alice")
	_, rt := e.login("app", secret, "alice", nil)
	for range 3 {
		_, body := e.refresh("app", secret, rt, nil)
		rt = body["refresh_token"].(string)
	}
	var famSize, tokSize int
	err := e.store.View(b.Context(), func(tx storage.Tx) error {
		if err := tx.Scan("refresh_families", "", func(_ string, v []byte) error { famSize = len(v); return nil }); err != nil {
			return err
		}
		return tx.Scan("refresh_tokens", "", func(_ string, v []byte) error { tokSize = len(v); return nil })
	})
	if err != nil || famSize == 0 || tokSize == 0 {
		b.Fatalf("record sizes %d %d: %v", famSize, tokSize, err)
	}
	st, err := bolt.Open(filepath.Join(b.TempDir(), "batch.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	fam, tok := []byte(strings.Repeat("f", famSize)), []byte(strings.Repeat("t", tokSize))
	var seq atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		famKey := base64.RawURLEncoding.EncodeToString([]byte{byte(seq.Add(1)), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
		for pb.Next() {
			var k [32]byte
			n := seq.Add(1)
			for i := range 8 {
				k[i] = byte(n >> (8 * i))
			}
			tokKey := base64.RawURLEncoding.EncodeToString(k[:])
			err := st.Batch(context.Background(), func(tx storage.Tx) error {
				if err := tx.Put("refresh_tokens", tokKey, tok); err != nil {
					return err
				}
				return tx.Put("refresh_families", famKey, fam)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLogin_UnknownUserCostsAHash: with the real argon2id parameters, a
// login for an unknown username takes about as long as a wrong password
// (a dummy hash is verified), so timing does not reveal which usernames
// exist. The bounds are loose: the check is that both pay one hash.
func TestLogin_UnknownUserCostsAHash(t *testing.T) {
	e := newEnv(t, envOptions{realHash: true})
	sec := e.userClient("app", nil)
	e.createUser("alice")
	timeLogin := func(user string) time.Duration {
		form := "grant_type=password&username=" + user + "&password=wrong+password"
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", sec)
		w := httptest.NewRecorder()
		start := time.Now()
		e.srv.ServeHTTP(w, req)
		d := time.Since(start)
		if w.Code != http.StatusBadRequest {
			t.Fatalf("login %s = %d %s", user, w.Code, w.Body)
		}
		_, _ = io.Copy(io.Discard, w.Body)
		return d
	}
	var known, unknown []time.Duration
	for range 7 {
		known = append(known, timeLogin("alice"))
		unknown = append(unknown, timeLogin("nobody"))
	}
	slices.Sort(known)
	slices.Sort(unknown)
	k, u := known[3], unknown[3]
	// A login that skips the hash is thousands of times faster (no
	// argon2id: microseconds against tens of milliseconds), so a bound of
	// 10× either way catches it even on a machine whose load swings the
	// medians by 5× (seen on the shared 2-core CI machine).
	if ratio := float64(u) / float64(k); ratio < 0.1 || ratio > 10 {
		t.Errorf("median login time: unknown user %s, wrong password %s (ratio %.2f); want about the same", u, k, ratio)
	}
	if k < time.Millisecond {
		t.Errorf("a wrong password took %s: the default argon2id parameters should cost more", k)
	}
}
