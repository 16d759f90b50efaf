package jwksdoc_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/storage/bolt"
)

// newManager is a real key manager on a real bolt file.
func newManager(tb testing.TB, algs ...string) *keys.Manager {
	tb.Helper()
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	m, err := keys.Open(tb.Context(), keys.Options{Store: st, KEK: bytes.Repeat([]byte{1}, 32), Algorithms: algs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(); st.Close() })
	return m
}

func get(t *testing.T, h http.Handler, method string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "/.well-known/jwks.json", nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler_Document(t *testing.T) {
	m := newManager(t, "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA")
	h := jwksdoc.NewHandler(m, 300*time.Second, nil)
	w := get(t, h, http.MethodGet, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET status %d", w.Code)
	}
	for k, want := range map[string]string{
		"Content-Type":                "application/json",
		"Cache-Control":               "public, max-age=300",
		"Access-Control-Allow-Origin": "*",
		"Content-Length":              itoa(w.Body.Len()),
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	etag := w.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Errorf("ETag %q is not a strong entity tag", etag)
	}

	// Only public members, in the raw JSON.
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 12 {
		t.Fatalf("%d keys published, want 12 (active + pending of 6 algorithms)", len(doc.Keys))
	}
	for _, k := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v publishes private member %q", k["kid"], private)
			}
		}
		for _, required := range []string{"kty", "kid", "use", "alg"} {
			if _, ok := k[required]; !ok {
				t.Errorf("key %v lacks %q", k["kid"], required)
			}
		}
		if k["use"] != "sig" || k["kty"] == "oct" {
			t.Errorf("key %v: use %v kty %v", k["kid"], k["use"], k["kty"])
		}
	}
	// Each kid is the thumbprint jwx computes from the published key.
	set, err := jwk.Parse(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		tp, _ := k.Thumbprint(crypto.SHA256)
		if want := base64.RawURLEncoding.EncodeToString(tp); k.KeyID() != want {
			t.Errorf("kid %s is not the RFC 7638 thumbprint %s", k.KeyID(), want)
		}
	}

	head := get(t, h, http.MethodHead, nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("ETag") != etag {
		t.Errorf("HEAD: status %d, %d body bytes, ETag %q", head.Code, head.Body.Len(), head.Header().Get("ETag"))
	}
}

func TestHandler_ConditionalAndMethods(t *testing.T) {
	m := newManager(t, "EdDSA")
	h := jwksdoc.NewHandler(m, time.Minute, nil)
	etag := get(t, h, http.MethodGet, nil).Header().Get("ETag")
	tests := []struct {
		name   string
		method string
		inm    string
		want   int
	}{
		{"match", http.MethodGet, etag, http.StatusNotModified},
		{"match in list", http.MethodGet, `"other", ` + etag, http.StatusNotModified},
		{"weak form of ours", http.MethodGet, "W/" + etag, http.StatusNotModified},
		{"star", http.MethodGet, "*", http.StatusNotModified},
		{"other tag", http.MethodGet, `"nope"`, http.StatusOK},
		{"head match", http.MethodHead, etag, http.StatusNotModified},
		{"post", http.MethodPost, "", http.StatusMethodNotAllowed},
		{"delete", http.MethodDelete, "", http.StatusMethodNotAllowed},
		{"preflight", http.MethodOptions, "", http.StatusNoContent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.inm != "" {
				hdr["If-None-Match"] = tc.inm
			}
			w := get(t, h, tc.method, hdr)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if w.Code == http.StatusNotModified && (w.Body.Len() != 0 || w.Header().Get("ETag") != etag) {
				t.Errorf("304 with %d body bytes and ETag %q", w.Body.Len(), w.Header().Get("ETag"))
			}
			if w.Header().Get("Access-Control-Allow-Origin") == "" && tc.want != http.StatusMethodNotAllowed {
				t.Error("no CORS header")
			}
		})
	}
}

func TestHandler_ETagChangesOnlyWithKeys(t *testing.T) {
	m := newManager(t, "ES256")
	h := jwksdoc.NewHandler(m, time.Minute, nil)
	first := get(t, h, http.MethodGet, nil)
	again := get(t, h, http.MethodGet, nil)
	if first.Header().Get("ETag") != again.Header().Get("ETag") || !bytes.Equal(first.Body.Bytes(), again.Body.Bytes()) {
		t.Fatal("ETag or body changed without a key change")
	}
	// A reload that changes nothing (a purge with nothing to purge) keeps the ETag.
	if _, err := m.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	rotated := get(t, h, http.MethodGet, nil)
	if rotated.Header().Get("ETag") == first.Header().Get("ETag") {
		t.Fatal("ETag did not change after a rotation")
	}
	if w := get(t, h, http.MethodGet, map[string]string{"If-None-Match": first.Header().Get("ETag")}); w.Code != http.StatusOK {
		t.Fatalf("old ETag after rotation: status %d, want 200", w.Code)
	}
}

// symmetricSource publishes a symmetric key, which must never be served.
type symmetricSource struct{}

func (symmetricSource) PublicSet() (jwk.Set, uint64) {
	k, _ := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	_ = k.Set(jwk.KeyIDKey, "oct")
	_ = k.Set(jwk.AlgorithmKey, "HS256")
	set := jwk.NewSet()
	_ = set.AddKey(k)
	return set, 1
}

func TestHandler_RefusesSymmetricKey(t *testing.T) {
	w := get(t, jwksdoc.NewHandler(symmetricSource{}, time.Minute, nil), http.MethodGet, nil)
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "0123456789") {
		t.Fatalf("status %d body %q: want 500 without the secret", w.Code, w.Body.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// discardWriter is a reusable ResponseWriter so that the benchmarks measure
// the handlers, not the recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkJWKS serves the JWK Set of 6 keys through echo; BenchmarkConstant
// serves the same bytes from a constant slice: the ceiling JWKS is held to.
func BenchmarkJWKS(b *testing.B) {
	m := newManager(b, "RS256", "ES256", "EdDSA")
	h := jwksdoc.NewHandler(m, 5*time.Minute, nil)
	body, _, err := h.Document()
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	e.GET("/.well-known/jwks.json", echo.WrapHandler(h))
	e.GET("/constant", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/json", body) })
	for _, path := range []string{"/.well-known/jwks.json", "/constant"} {
		b.Run(strings.TrimPrefix(path, "/.well-known/"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, path, nil)
				w := &discardWriter{h: make(http.Header, 8)}
				for pb.Next() {
					clear(w.h)
					e.ServeHTTP(w, r)
					if w.code != http.StatusOK {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		})
	}
}

// staticSource publishes a fixed set.
type staticSource struct{ set jwk.Set }

func (s staticSource) PublicSet() (jwk.Set, uint64) { return s.set, 1 }

// publicJWK makes a public JWK of priv, setting kid, alg and use in the
// order given by members, so two calls can build the same key differently.
func publicJWK(t *testing.T, priv crypto.Signer, alg string, members []string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{jwk.KeyIDKey: base64.RawURLEncoding.EncodeToString(tp), jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"}
	for _, m := range members {
		if err := k.Set(m, vals[m]); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// TestHandler_Deterministic: two handlers (two replicas) given the same
// keys, inserted in different orders with their members set in different
// orders, serve identical bytes and the same ETag; keys are sorted by kid
// and each key's members are in lexicographic order.
func TestHandler_Deterministic(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	type spec struct {
		priv crypto.Signer
		alg  string
	}
	specs := []spec{{rsaKey, "RS256"}, {ecKey, "ES256"}, {edKey, "EdDSA"}, {rsaKey, "PS256"}}
	build := func(order []int, members []string) jwk.Set {
		set := jwk.NewSet()
		for _, i := range order {
			if err := set.AddKey(publicJWK(t, specs[i].priv, specs[i].alg, members)); err != nil {
				t.Fatal(err)
			}
		}
		return set
	}
	a := jwksdoc.NewHandler(staticSource{build([]int{0, 1, 2, 3}, []string{jwk.KeyIDKey, jwk.AlgorithmKey, jwk.KeyUsageKey})}, time.Minute, nil)
	b := jwksdoc.NewHandler(staticSource{build([]int{3, 2, 1, 0}, []string{jwk.KeyUsageKey, jwk.AlgorithmKey, jwk.KeyIDKey})}, time.Minute, nil)
	bodyA, etagA, err := a.Document()
	if err != nil {
		t.Fatal(err)
	}
	bodyB, etagB, err := b.Document()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bodyA, bodyB) || etagA != etagB {
		t.Fatalf("replicas differ:\n%s %s\n%s %s", bodyA, etagA, bodyB, etagB)
	}
	sum := sha256.Sum256(bodyA)
	if want := `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`; etagA != want {
		t.Errorf("ETag %s is not the hash of the body (%s)", etagA, want)
	}
	if w := get(t, b, http.MethodGet, map[string]string{"If-None-Match": etagA}); w.Code != http.StatusNotModified {
		t.Errorf("replica B answers replica A's ETag with %d, want 304", w.Code)
	}

	// Order: kid, then alg; members sorted within each key.
	dec := json.NewDecoder(bytes.NewReader(bodyA))
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != len(specs) {
		t.Fatalf("%d keys, want %d", len(doc.Keys), len(specs))
	}
	prev := ""
	for _, raw := range doc.Keys {
		names := memberNames(t, raw)
		if !slices.IsSorted(names) {
			t.Errorf("members not sorted: %v", names)
		}
		var k struct{ Kid, Alg string }
		if err := json.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
		if cur := k.Kid + " " + k.Alg; cur < prev {
			t.Errorf("key %s after %s: not sorted by kid then alg", cur, prev)
		} else {
			prev = cur
		}
	}
	if bytes.ContainsAny(bodyA, " \n\t") {
		t.Error("body has insignificant whitespace")
	}
}

// memberNames lists the member names of a JSON object in document order.
func memberNames(t *testing.T, obj []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return names
}
