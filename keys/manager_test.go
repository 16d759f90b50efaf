package keys_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

// clock is an injectable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T) (*bolt.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signet.db")
	st, err := bolt.Open(path, bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func testKEK(b byte) []byte { return bytes.Repeat([]byte{b}, keys.KEKSize) }

func openManager(t *testing.T, st storage.Store, opts keys.Options) *keys.Manager {
	t.Helper()
	opts.Store = st
	if opts.KEK == nil {
		opts.KEK = testKEK(7)
	}
	m, err := keys.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("keys.Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// byState indexes the current keys.
func byState(infos []keys.Info) map[keys.State]map[string][]keys.Info {
	out := map[keys.State]map[string][]keys.Info{}
	for _, k := range infos {
		if out[k.State] == nil {
			out[k.State] = map[string][]keys.Info{}
		}
		out[k.State][k.Alg] = append(out[k.State][k.Alg], k)
	}
	return out
}

func publishedKIDs(m *keys.Manager) map[string]bool {
	set, _ := m.PublicSet()
	out := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		out[k.KeyID()] = true
	}
	return out
}

var allAlgs = []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"}

func TestManager_Open_EmptyStore(t *testing.T) {
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: allAlgs})
	s := byState(m.Current())
	for _, alg := range allAlgs {
		if n := len(s[keys.StateActive][alg]); n != 1 {
			t.Errorf("%s: %d active keys, want 1", alg, n)
		}
		if n := len(s[keys.StatePending][alg]); n != 1 {
			t.Errorf("%s: %d pending keys, want 1", alg, n)
		}
		k, err := m.SigningKey(alg)
		if err != nil {
			t.Fatalf("SigningKey(%s): %v", alg, err)
		}
		if k.Algorithm().String() != alg {
			t.Errorf("SigningKey(%s).Algorithm() = %s", alg, k.Algorithm())
		}
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready() = %v", err)
	}
	set, _ := m.PublicSet()
	if set.Len() != 2*len(allAlgs) {
		t.Fatalf("published %d keys, want %d", set.Len(), 2*len(allAlgs))
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if want := base64.RawURLEncoding.EncodeToString(tp); k.KeyID() != want {
			t.Errorf("kid %s, want RFC 7638 thumbprint %s", k.KeyID(), want)
		}
		if priv, _ := jwk.IsPrivateKey(k); priv {
			t.Errorf("key %s in the public set is private", k.KeyID())
		}
		if k.KeyUsage() != "sig" {
			t.Errorf("key %s use = %q, want sig", k.KeyID(), k.KeyUsage())
		}
	}
	if _, err := m.SigningKey("HS256"); !errors.Is(err, keys.ErrNoSigningKey) {
		t.Errorf("SigningKey(HS256) = %v, want ErrNoSigningKey", err)
	}
}

func TestManager_Open_RejectsBadOptions(t *testing.T) {
	st, _ := openStore(t)
	for name, opts := range map[string]keys.Options{
		"hs256":                    {Algorithms: []string{"HS256"}},
		"rsa 1024":                 {RSABits: 1024},
		"short kek":                {KEK: []byte("short")},
		"negative max token ttl":   {MaxTokenTTL: -time.Hour},
		"negative purge leeway":    {PurgeLeeway: -time.Minute},
		"negative min publish age": {MinPublishAge: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			opts.Store = st
			if opts.KEK == nil {
				opts.KEK = testKEK(1)
			}
			if _, err := keys.Open(t.Context(), opts); err == nil {
				t.Fatal("Open succeeded, want error")
			}
		})
	}
}

// TestManager_Rotate_Lifecycle rotates ten times with an injected clock and
// checks which keys are active, published and purged at every step.
func TestManager_Rotate_Lifecycle(t *testing.T) {
	st, _ := openStore(t)
	clk := newClock()
	const ttl, leeway, period = time.Hour, 5 * time.Minute, 30 * time.Minute
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256"}, MaxTokenTTL: ttl, PurgeLeeway: leeway, MinPublishAge: 5 * time.Minute, Now: clk.Now})
	retiredAt := map[string]time.Time{}
	for i := range 10 {
		before := byState(m.Current())
		oldActive := before[keys.StateActive]["ES256"][0]
		oldPending := before[keys.StatePending]["ES256"][0]
		clk.Add(period)
		if err := m.Rotate(t.Context(), false); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		after := byState(m.Current())
		if got := after[keys.StateActive]["ES256"]; len(got) != 1 || got[0].KID != oldPending.KID {
			t.Fatalf("rotation %d: active = %v, want the previous pending %s", i, got, oldPending.KID)
		}
		if sk, _ := m.SigningKey("ES256"); sk.KeyID() != oldPending.KID {
			t.Fatalf("rotation %d: signing kid %s, want %s", i, sk.KeyID(), oldPending.KID)
		}
		retiredAt[oldActive.KID] = clk.Now()
		if _, err := m.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		pub := publishedKIDs(m)
		for kid, at := range retiredAt {
			inGrace := clk.Now().Before(at.Add(ttl + leeway))
			if pub[kid] != inGrace {
				t.Errorf("rotation %d: retired %s published=%v, want %v (retired %s ago)", i, kid, pub[kid], inGrace, clk.Now().Sub(at))
			}
		}
	}
}

func TestManager_Rotate_PendingTooYoung(t *testing.T) {
	st, _ := openStore(t)
	clk := newClock()
	m := openManager(t, st, keys.Options{Algorithms: []string{"EdDSA"}, MinPublishAge: 5 * time.Minute, Now: clk.Now})
	clk.Add(time.Minute)
	active, _ := m.SigningKey("EdDSA")
	if err := m.Rotate(t.Context(), false); !errors.Is(err, keys.ErrPendingTooYoung) {
		t.Fatalf("Rotate() = %v, want ErrPendingTooYoung", err)
	}
	if now, _ := m.SigningKey("EdDSA"); now.KeyID() != active.KeyID() {
		t.Fatal("a refused rotation changed the active key")
	}
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatalf("forced Rotate() = %v", err)
	}
	if now, _ := m.SigningKey("EdDSA"); now.KeyID() == active.KeyID() {
		t.Fatal("forced rotation kept the active key")
	}
}

func TestManager_Reopen_SameKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	open := func() (*bolt.Store, *keys.Manager) {
		st, err := bolt.Open(path, bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m, err := keys.Open(t.Context(), keys.Options{Store: st, KEK: testKEK(3), Algorithms: []string{"ES256", "EdDSA"}})
		if err != nil {
			t.Fatal(err)
		}
		return st, m
	}
	st, m := open()
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	before := m.Current()
	m.Close()
	st.Close()
	st, m = open()
	defer st.Close()
	defer m.Close()
	after := m.Current()
	if len(before) != len(after) {
		t.Fatalf("after restart %d keys, want %d", len(after), len(before))
	}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("key %d after restart = %+v, want %+v", i, after[i], before[i])
		}
	}
}

func TestManager_Open_WrongKEK(t *testing.T) {
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256"}, KEK: testKEK(1)})
	active, _ := m.SigningKey("ES256")
	m.Close()
	before, _ := m.List(t.Context())
	_, err := keys.Open(t.Context(), keys.Options{Store: st, KEK: testKEK(2), Algorithms: []string{"ES256"}})
	var de *keys.DecryptError
	if !errors.As(err, &de) {
		t.Fatalf("Open with wrong KEK = %v, want *DecryptError", err)
	}
	if de.KID == "" || !bytes.Contains([]byte(err.Error()), []byte(de.KID)) {
		t.Errorf("error %q does not name the kid", err)
	}
	after, _ := keys.List(t.Context(), st)
	if len(after) != len(before) {
		t.Fatalf("wrong KEK changed the store: %d keys, want %d", len(after), len(before))
	}
	_ = active
}

// TestManager_EncryptedAtRest generates keys of every type and looks for
// their private material in the raw database file, in every plain encoding.
func TestManager_EncryptedAtRest(t *testing.T) {
	st, path := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: allAlgs})
	var secrets [][]byte
	for _, alg := range allAlgs {
		k, err := m.SigningKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		var raw any
		if err := k.Raw(&raw); err != nil {
			t.Fatal(err)
		}
		var scalar []byte
		switch p := raw.(type) {
		case *rsa.PrivateKey:
			scalar = p.D.Bytes()
			secrets = append(secrets, p.Primes[0].Bytes(), p.Primes[1].Bytes())
		case *ecdsa.PrivateKey:
			scalar, _ = p.Bytes()
		case ed25519.PrivateKey:
			scalar = p.Seed()
		default:
			t.Fatalf("%s: unexpected key type %T", alg, raw)
		}
		secrets = append(secrets, scalar)
		der, err := x509.MarshalPKCS8PrivateKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, der, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		forms := [][]byte{s, []byte(base64.RawURLEncoding.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s))}
		for _, f := range forms {
			probe := f
			if len(probe) > 24 {
				probe = probe[len(probe)/2-12 : len(probe)/2+12] // any 24-byte window would do
			}
			if bytes.Contains(file, probe) {
				t.Fatalf("database file contains private key material (%d-byte form)", len(f))
			}
		}
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("database mode %v, want 0600", perm)
	}
}

func TestManager_Revoke(t *testing.T) {
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256", "EdDSA"}})
	s := byState(m.Current())
	active := s[keys.StateActive]["ES256"][0]
	pending := s[keys.StatePending]["ES256"][0]
	other, _ := m.SigningKey("EdDSA")

	if err := m.Revoke(t.Context(), active.KID); err != nil {
		t.Fatal(err)
	}
	if publishedKIDs(m)[active.KID] {
		t.Error("revoked key still published")
	}
	if k, _ := m.SigningKey("ES256"); k.KeyID() != pending.KID {
		t.Errorf("after revoking the active key, signing kid %s, want the promoted pending %s", k.KeyID(), pending.KID)
	}
	s = byState(m.Current())
	if n := len(s[keys.StatePending]["ES256"]); n != 1 {
		t.Errorf("%d pending ES256 keys after emergency rotation, want 1", n)
	}
	if k, _ := m.SigningKey("EdDSA"); k.KeyID() != other.KeyID() {
		t.Error("revoking an ES256 key changed the EdDSA key")
	}
	// A pending key is replaced.
	newPending := s[keys.StatePending]["ES256"][0]
	if err := m.Revoke(t.Context(), newPending.KID); err != nil {
		t.Fatal(err)
	}
	s = byState(m.Current())
	if p := s[keys.StatePending]["ES256"]; len(p) != 1 || p[0].KID == newPending.KID {
		t.Errorf("pending after revoking pending = %v", p)
	}
	// Idempotent, and an unknown kid is not found.
	if err := m.Revoke(t.Context(), active.KID); err != nil {
		t.Errorf("second revoke = %v, want nil", err)
	}
	if err := m.Revoke(t.Context(), "no-such-kid"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("revoke unknown = %v, want ErrNotFound", err)
	}
}

func TestManager_Algorithms_Removed(t *testing.T) {
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256", "EdDSA"}})
	m.Close()
	m = openManager(t, st, keys.Options{Algorithms: []string{"EdDSA"}})
	s := byState(m.Current())
	if len(s[keys.StateActive]["ES256"])+len(s[keys.StatePending]["ES256"]) != 0 {
		t.Error("ES256 keys still active or pending after ES256 left the configuration")
	}
	if n := len(s[keys.StateRetired]["ES256"]); n != 2 {
		t.Errorf("%d retired ES256 keys, want 2 (published until their tokens expire)", n)
	}
}

// TestManager_Watch_OtherManager: a second manager on the same store (as a
// second replica would be) follows the first one's rotations, including a
// rotation committed the instant Open returns: Open must have subscribed to
// the store before it returned, or that change is lost for good. Each round
// opens a fresh replica and rotates with no pause, so a late subscription
// fails this test in nearly every run.
func TestManager_Watch_OtherManager(t *testing.T) {
	st, _ := openStore(t)
	a := openManager(t, st, keys.Options{Algorithms: []string{"EdDSA"}})
	for round := range 10 {
		b := openManager(t, st, keys.Options{Algorithms: []string{"EdDSA"}})
		if err := a.Rotate(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		want, _ := a.SigningKey("EdDSA")
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, _ := b.SigningKey("EdDSA")
			if got.KeyID() == want.KeyID() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: replica signs with %s, want %s after watch", round, got.KeyID(), want.KeyID())
			}
			time.Sleep(time.Millisecond) // polling an eventual condition, bounded by the deadline
		}
		b.Close()
	}
}

// TestManager_Concurrent: 32 goroutines rotate and sign at once. Every call
// succeeds, exactly one key per algorithm is active in every stored state,
// and every token verifies against the key set read afterwards.
func TestManager_Concurrent(t *testing.T) {
	st, _ := openStore(t)
	algs := []string{"ES256", "EdDSA"}
	m := openManager(t, st, keys.Options{Algorithms: algs, MaxTokenTTL: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// Observe every committed state through a watch.
	events := st.Watch(ctx, keys.Bucket)
	observed := make(chan error, 1)
	var checks atomic.Int64
	go func() {
		for range events {
			infos, err := keys.List(ctx, st)
			if err != nil {
				// After the test's cancel a List fails for the context:
				// the observer still reports, or the test waits forever
				// on observed (it did once in CI, stress step).
				if ctx.Err() != nil {
					err = nil
				}
				observed <- err
				return
			}
			s := byState(infos)
			for _, alg := range algs {
				if n := len(s[keys.StateActive][alg]); n != 1 {
					observed <- errors.New("observed a state without exactly one active " + alg + " key")
					return
				}
			}
			checks.Add(1)
		}
		observed <- nil
	}()

	type signed struct{ alg, token string }
	var mu sync.Mutex
	var tokens []signed
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				if g%4 == 0 && i%2 == 0 {
					if err := m.Rotate(ctx, true); err != nil {
						errs <- err
						return
					}
					continue
				}
				alg := algs[(g+i)%len(algs)]
				k, err := m.SigningKey(alg)
				if err != nil {
					errs <- err
					return
				}
				tok, err := jws.Sign([]byte(`{"n":1}`), jws.WithKey(jwa.SignatureAlgorithm(alg), k))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				tokens = append(tokens, signed{alg, string(tok)})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent call: %v", err)
	}
	set, _ := m.PublicSet()
	for _, tok := range tokens {
		if _, err := jws.Verify([]byte(tok.token), jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
			t.Fatalf("%s token does not verify against the key set read after: %v", tok.alg, err)
		}
	}
	if m.Rotations() == 0 {
		t.Fatal("no rotation happened")
	}
	cancel()
	if err := <-observed; err != nil {
		t.Fatal(err)
	}
	if checks.Load() == 0 {
		t.Fatal("the watch observed no state")
	}
}

// TestManager_RotationCounts: each rotation is counted per algorithm under
// the reason the caller gave (a scheduled and a manual rotation), and the
// promotion that revoking an active key causes counts as "revoke". Every
// live algorithm has a series for every reason, zeros included.
func TestManager_RotationCounts(t *testing.T) {
	st, _ := openStore(t)
	algs := []string{"ES256", "EdDSA"}
	m := openManager(t, st, keys.Options{Algorithms: algs})
	other := openManager(t, st, keys.Options{Algorithms: algs})
	if err := m.RotateScheduled(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	active, _ := m.SigningKey("EdDSA")
	if err := m.Revoke(t.Context(), active.KeyID()); err != nil {
		t.Fatal(err)
	}
	if err := other.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, c := range m.RotationCounts() {
		got[c.Alg+"/"+string(c.Reason)] = c.N
	}
	want := map[string]uint64{
		"ES256/schedule": 1, "ES256/manual": 1, "ES256/revoke": 0,
		"EdDSA/schedule": 1, "EdDSA/manual": 1, "EdDSA/revoke": 1,
	}
	if len(got) != len(want) {
		t.Errorf("RotationCounts() = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("rotations %s = %d, want %d", k, got[k], n)
		}
	}
	// Counts are per process: the other manager counts only its own.
	for _, c := range other.RotationCounts() {
		want := uint64(0)
		if c.Reason == keys.ReasonManual {
			want = 1
		}
		if c.N != want {
			t.Errorf("other manager: %s/%s = %d, want %d", c.Alg, c.Reason, c.N, want)
		}
	}
}
