package clientauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/outbound"
)

// keySetServer serves a JWK Set the test replaces, over real HTTP on
// 127.0.0.1, and counts the requests.
type keySetServer struct {
	mu    sync.Mutex
	set   []byte
	count atomic.Int32
	url   string
}

func newKeySetServer(t *testing.T) *keySetServer {
	s := &keySetServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.set)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/jwks.json"
	return s
}

func (s *keySetServer) publish(t *testing.T, keys ...*ecdsa.PrivateKey) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := jwk.FromRaw(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		_ = pub.Set(jwk.KeyIDKey, kidOf(k))
		_ = pub.Set(jwk.AlgorithmKey, jwa.ES256)
		_ = set.AddKey(pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.set = b
	s.mu.Unlock()
}

var kids sync.Map // *ecdsa.PrivateKey → kid

func kidOf(k *ecdsa.PrivateKey) string {
	v, _ := kids.Load(k)
	s, _ := v.(string)
	return s
}

func newKey(t *testing.T, kid string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kids.Store(k, kid)
	return k
}

// token is a JWT signed by k with the header kid (none when empty).
func token(t *testing.T, k *ecdsa.PrivateKey, kid string) *clientauth.JWT {
	t.Helper()
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	if kid != "" {
		_ = h.Set(jws.KeyIDKey, kid)
	}
	payload := []byte(`{"iss":"https://issuer.example","sub":"s","aud":"a","exp":4102444800}`)
	raw, err := jws.Sign(payload, jws.WithKey(jwa.ES256, k, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clientauth.ParseJWT(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestJWT_VerifyAt_RefetchOnce: a key set is fetched once and cached; a
// token whose kid the cached set lacks makes one refetch (the owner
// rotated) and verifies with the new set; a stream of unknown kids costs
// at most one fetch per RefetchEvery; a kid the set has whose signature
// does not verify, and a token without kid, cost no fetch at all.
func TestJWT_VerifyAt_RefetchOnce(t *testing.T) {
	ctx := context.Background()
	srv := newKeySetServer(t)
	clk := &testClock{now: time.Unix(1_800_000_000, 0)}
	f := outbound.New(outbound.Options{AllowLoopback: true, RefetchEvery: 30 * time.Second, MinTTL: time.Hour, MaxTTL: time.Hour, Now: clk.Now})
	a, b, c := newKey(t, "a"), newKey(t, "b"), newKey(t, "c")
	srv.publish(t, a)

	verify := func(name string, tok *clientauth.JWT, wantOK bool, wantFetches int32) {
		t.Helper()
		ok, err := tok.VerifyAt(ctx, f, srv.url)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ok != wantOK {
			t.Fatalf("%s: ok = %v, want %v", name, ok, wantOK)
		}
		if got := srv.count.Load(); got != wantFetches {
			t.Fatalf("%s: fetches = %d, want %d", name, got, wantFetches)
		}
	}
	verify("first token", token(t, a, "a"), true, 1)
	verify("again, cached", token(t, a, "a"), true, 1)

	// The owner rotates to b: the cached set lacks kid b, one refetch
	// (the first fetch is more than RefetchEvery ago).
	clk.Add(time.Minute)
	srv.publish(t, b)
	verify("rotated key", token(t, b, "b"), true, 2)
	verify("rotated key, cached", token(t, b, "b"), true, 2)

	// Unknown kids right after: the refetch is rate limited.
	verify("unknown kid within RefetchEvery", token(t, c, "c"), false, 2)
	verify("another unknown kid", token(t, c, "zzz"), false, 2)

	// Known kid, wrong signature (another key claiming kid b): no fetch.
	forger := newKey(t, "b")
	clk.Add(time.Minute)
	verify("known kid, bad signature", token(t, forger, "b"), false, 2)
	// No kid: the set is what it is, no fetch.
	verify("no kid, unknown key", token(t, c, ""), false, 2)
	verify("no kid, published key", token(t, b, ""), true, 2)

	// Past RefetchEvery an unknown kid refetches once, and only once:
	// the set published meanwhile (c) verifies.
	srv.publish(t, b, c)
	verify("unknown kid after RefetchEvery", token(t, c, "c"), true, 3)
	verify("then cached", token(t, c, "c"), true, 3)
	verify("a kid still unknown after the refetch", token(t, a, "a"), false, 3)
}
