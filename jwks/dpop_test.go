package jwks

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

const dpopURL = "https://api.example.com/invoices"

// dpopKey is a client's proof key: the signer and its public JWK as a
// client would embed it, with the thumbprint jwx computes for it (an
// implementation other than the checker's).
type dpopKey struct {
	*testKey
	jwk map[string]any
	jkt string
}

var proofSeq atomic.Int64

func newDPoPKey(t testing.TB, alg string) *dpopKey {
	t.Helper()
	k := newTestKey(t, alg)
	pub, err := jwk.FromRaw(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, pub), &m); err != nil {
		t.Fatal(err)
	}
	return &dpopKey{testKey: k, jwk: m, jkt: b64u(tp)}
}

// claims are valid proof claims for GET dpopURL at now, with a fresh jti.
func (k *dpopKey) claims(now time.Time) map[string]any {
	return map[string]any{
		"jti": fmt.Sprintf("proof-%d", proofSeq.Add(1)),
		"htm": "GET",
		"htu": dpopURL,
		"iat": now.Unix(),
	}
}

// proof signs claims with header {typ: dpop+jwt, alg, jwk} plus extra (a nil
// value removes a member).
func (k *dpopKey) proof(t testing.TB, claims map[string]any, extra map[string]any) string {
	t.Helper()
	hdr := map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.jwk}
	for n, v := range extra {
		if v == nil {
			delete(hdr, n)
		} else {
			hdr[n] = v
		}
	}
	alg, _ := hdr["alg"].(string)
	return signRaw(t, k.testKey, alg, mustJSON(t, hdr), mustJSON(t, claims))
}

func newTestChecker(t testing.TB, clk *fakeClock, opts ...DPoPOption) *DPoPChecker {
	t.Helper()
	c, err := NewDPoPChecker(append([]DPoPOption{WithDPoPClock(clk.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func athOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return b64u(sum[:])
}

// TestDPoPCheck_Algorithms: a proof of every default algorithm is accepted
// and yields the thumbprint jwx computes for the key.
func TestDPoPCheck_Algorithms(t *testing.T) {
	clk := newFakeClock()
	c := newTestChecker(t, clk)
	for _, alg := range []string{"ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			k := newDPoPKey(t, alg)
			cl := k.claims(clk.Now())
			p, err := c.Check(t.Context(), DPoPRequest{Proof: k.proof(t, cl, nil), Method: "GET", URL: dpopURL})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if p.Thumbprint != k.jkt || p.Algorithm != alg || p.JTI != cl["jti"] || !p.IssuedAt.Equal(clk.Now()) {
				t.Errorf("proof = %+v, want thumbprint %s, alg %s", p, k.jkt, alg)
			}
		})
	}
	// RFC 9864's Ed25519, as oauth4webapi (openid-client) signs Ed25519
	// keys: the same signature as EdDSA, under its fully-specified name.
	t.Run("Ed25519", func(t *testing.T) {
		k := newDPoPKey(t, "EdDSA")
		hdr := mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "Ed25519", "jwk": k.jwk})
		proof := signRaw(t, k.testKey, "EdDSA", hdr, mustJSON(t, k.claims(clk.Now())))
		p, err := c.Check(t.Context(), DPoPRequest{Proof: proof, Method: "GET", URL: dpopURL})
		if err != nil || p.Thumbprint != k.jkt || p.Algorithm != "Ed25519" {
			t.Fatalf("Check = %+v, %v", p, err)
		}
		// An Ed25519 proof with an EC key is refused like an EdDSA one.
		ec := newDPoPKey(t, "ES256")
		hdr = mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "Ed25519", "jwk": ec.jwk})
		bad := signRaw(t, k.testKey, "EdDSA", hdr, mustJSON(t, k.claims(clk.Now())))
		if _, err := c.Check(t.Context(), DPoPRequest{Proof: bad, Method: "GET", URL: dpopURL}); !errors.Is(err, ErrDPoPProof) {
			t.Fatalf("Ed25519 with an EC jwk: %v", err)
		}
	})
}

// TestDPoPCheck_Accepts: variations a conforming client may send.
func TestDPoPCheck_Accepts(t *testing.T) {
	clk := newFakeClock()
	nonces := NewRotatingNonces(time.Minute, clk.Now)
	c := newTestChecker(t, clk)
	cn := newTestChecker(t, clk, WithDPoPNonces(nonces))
	k := newDPoPKey(t, "ES256")
	const token = "eyJhbGciOiJFUzI1NiJ9.e30.sig"
	for _, tc := range []struct {
		name string
		c    *DPoPChecker
		mod  func(cl, hdr map[string]any)
		req  DPoPRequest
	}{
		{"query and fragment ignored", c, func(cl, _ map[string]any) { cl["htu"] = dpopURL + "?a=1#frag" },
			DPoPRequest{Method: "GET", URL: dpopURL + "?b=2"}},
		{"scheme and host case, default port", c, func(cl, _ map[string]any) { cl["htu"] = "HTTPS://API.Example.COM:443/invoices" },
			DPoPRequest{Method: "GET", URL: dpopURL}},
		{"percent-encoding normalised", c, func(cl, _ map[string]any) { cl["htu"] = "https://api.example.com/%69nvoices/a%2fb" },
			DPoPRequest{Method: "GET", URL: "https://api.example.com/invoices/a%2Fb"}},
		{"dot segments removed", c, func(cl, _ map[string]any) { cl["htu"] = "https://api.example.com/x/../invoices" },
			DPoPRequest{Method: "GET", URL: dpopURL}},
		{"empty path is /", c, func(cl, _ map[string]any) { cl["htu"] = "https://api.example.com" },
			DPoPRequest{Method: "GET", URL: "https://api.example.com/"}},
		{"iat at the edge of the window", c, func(cl, _ map[string]any) { cl["iat"] = clk.Now().Add(-DefaultDPoPMaxAge).Unix() },
			DPoPRequest{Method: "GET", URL: dpopURL}},
		{"iat ahead within skew", c, func(cl, _ map[string]any) { cl["iat"] = clk.Now().Add(DefaultDPoPSkew).Unix() },
			DPoPRequest{Method: "GET", URL: dpopURL}},
		{"ath of the token", c, func(cl, _ map[string]any) { cl["ath"] = athOf(token) },
			DPoPRequest{Method: "GET", URL: dpopURL, AccessToken: token}},
		{"ath ignored without a token", c, func(cl, _ map[string]any) { cl["ath"] = "whatever" },
			DPoPRequest{Method: "GET", URL: dpopURL}},
		{"bound to its own key", c, func(cl, _ map[string]any) {},
			DPoPRequest{Method: "GET", URL: dpopURL, BoundTo: k.jkt}},
		{"typ with application/ prefix", c, func(_, hdr map[string]any) { hdr["typ"] = "application/dpop+jwt" },
			DPoPRequest{Method: "GET", URL: dpopURL}},
		{"kid and jwk metadata ignored", c, func(_, hdr map[string]any) {
			j := map[string]any{"use": "sig", "key_ops": []string{"verify"}, "ext": true, "alg": "ES256", "kid": "k1"}
			for n, v := range k.jwk {
				j[n] = v
			}
			hdr["jwk"], hdr["kid"] = j, "k1"
		}, DPoPRequest{Method: "GET", URL: dpopURL}},
		{"current nonce", cn, func(cl, _ map[string]any) { cl["nonce"] = nonces.Current() },
			DPoPRequest{Method: "GET", URL: dpopURL}},
		{"POST", c, func(cl, _ map[string]any) { cl["htm"] = "POST" },
			DPoPRequest{Method: "POST", URL: dpopURL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, hdr := k.claims(clk.Now()), map[string]any{}
			tc.mod(cl, hdr)
			req := tc.req
			req.Proof = k.proof(t, cl, hdr)
			p, err := tc.c.Check(t.Context(), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if p.Thumbprint != k.jkt {
				t.Errorf("thumbprint %s, want %s", p.Thumbprint, k.jkt)
			}
		})
	}
}

// TestDPoPCheck_Attacks: each row is a proof RFC 9449 §4.3 (or RFC 8725)
// says to refuse, with the error it must wrap and a word of the message
// naming the check that caught it.
func TestDPoPCheck_Attacks(t *testing.T) {
	clk := newFakeClock()
	nonces := NewRotatingNonces(time.Minute, clk.Now)
	c := newTestChecker(t, clk)
	cn := newTestChecker(t, clk, WithDPoPNonces(nonces))
	k := newDPoPKey(t, "ES256")
	other := newDPoPKey(t, "ES256")
	rsaKey := newDPoPKey(t, "RS256")
	p384 := newDPoPKey(t, "ES384")
	const token = "eyJhbGciOiJFUzI1NiJ9.e30.sig"
	get := DPoPRequest{Method: "GET", URL: dpopURL}

	ecPriv := k.priv.(*ecdsa.PrivateKey)
	privJWK := func() map[string]any {
		j := map[string]any{}
		for n, v := range k.jwk {
			j[n] = v
		}
		j["d"] = b64u(ecPriv.D.FillBytes(make([]byte, 32)))
		return j
	}
	hmacProof := func() string {
		// HS256 keyed with the public JWK's bytes: the classic confusion.
		hdr := b64u(mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": k.jwk}))
		body := b64u(mustJSON(t, k.claims(clk.Now())))
		mac := hmac.New(sha256.New, mustJSON(t, k.jwk))
		mac.Write([]byte(hdr + "." + body))
		return hdr + "." + body + "." + b64u(mac.Sum(nil))
	}
	noneProof := func() string {
		return b64u(mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": k.jwk})) + "." +
			b64u(mustJSON(t, k.claims(clk.Now()))) + "."
	}
	rawProof := func(hdr, payload string) string {
		return signRaw(t, k.testKey, "ES256", []byte(hdr), []byte(payload))
	}
	// An RSA key with a leading zero byte on n: its thumbprint would differ
	// from the client's.
	rsaPub := rsaKey.priv.Public().(*rsa.PublicKey)
	paddedN := b64u(append([]byte{0}, rsaPub.N.Bytes()...))

	type row struct {
		name  string
		c     *DPoPChecker
		proof func() string
		req   DPoPRequest
		want  error
		words string
	}
	with := func(mod func(cl, hdr map[string]any)) func() string {
		return func() string {
			cl, hdr := k.claims(clk.Now()), map[string]any{}
			mod(cl, hdr)
			return k.proof(t, cl, hdr)
		}
	}
	rows := []row{
		{"alg none", c, noneProof, get, ErrDPoPProof, "alg"},
		{"alg HS256 keyed with the public key", c, hmacProof, get, ErrDPoPProof, "alg"},
		{"alg not allowed", newTestChecker(t, clk, WithDPoPAlgorithms("EdDSA")), with(func(_, _ map[string]any) {}), get, ErrDPoPProof, "alg"},
		{"typ missing", c, with(func(_, h map[string]any) { h["typ"] = nil }), get, ErrDPoPProof, "typ"},
		{"typ JWT", c, with(func(_, h map[string]any) { h["typ"] = "JWT" }), get, ErrDPoPProof, "typ"},
		{"typ at+jwt", c, with(func(_, h map[string]any) { h["typ"] = "at+jwt" }), get, ErrDPoPProof, "typ"},
		{"jwk missing", c, with(func(_, h map[string]any) { h["jwk"] = nil }), get, ErrDPoPProof, "jwk"},
		{"jwk is a string", c, with(func(_, h map[string]any) { h["jwk"] = "key" }), get, ErrDPoPProof, "jwk"},
		{"jwk carries the private key", c, with(func(_, h map[string]any) { h["jwk"] = privJWK() }), get, ErrDPoPProof, "private"},
		{"jwk symmetric", c, with(func(_, h map[string]any) {
			h["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0"}
		}), get, ErrDPoPProof, "private"},
		{"jwk kty does not fit alg", c, func() string {
			return rsaKey.proof(t, rsaKey.claims(clk.Now()), map[string]any{"jwk": k.jwk})
		}, get, ErrDPoPProof, "kty"},
		{"jwk curve does not fit alg", c, func() string {
			return p384.proof(t, p384.claims(clk.Now()), map[string]any{"alg": "ES256"})
		}, get, ErrDPoPProof, "crv"},
		{"jwk of another key than the signer", c, with(func(_, h map[string]any) { h["jwk"] = other.jwk }), get, ErrDPoPProof, "signature"},
		{"jwk RSA n not minimal", c, func() string {
			j := map[string]any{"kty": "RSA", "e": rsaKey.jwk["e"], "n": paddedN}
			return rsaKey.proof(t, rsaKey.claims(clk.Now()), map[string]any{"jwk": j})
		}, get, ErrDPoPProof, "minimal"},
		{"jwk EC point off the curve", c, with(func(_, h map[string]any) {
			j := map[string]any{"kty": "EC", "crv": "P-256", "x": k.jwk["x"], "y": other.jwk["y"]}
			h["jwk"] = j
		}), get, ErrDPoPProof, "point"},
		{"jku header", c, with(func(_, h map[string]any) { h["jku"] = "https://evil.example/jwks" }), get, ErrDPoPProof, "jku"},
		{"x5c header", c, with(func(_, h map[string]any) { h["x5c"] = []string{"MIIB"} }), get, ErrDPoPProof, "x5c"},
		{"crit header", c, with(func(_, h map[string]any) { h["crit"] = []string{"exp"} }), get, ErrDPoPProof, "crit"},
		{"signature tampered", c, func() string { return with(func(_, _ map[string]any) {})() + "A" }, get, ErrDPoPProof, "signature"},
		{"payload swapped after signing", c, func() string {
			p := strings.Split(with(func(_, _ map[string]any) {})(), ".")
			cl := k.claims(clk.Now())
			cl["htm"] = "DELETE"
			return p[0] + "." + b64u(mustJSON(t, cl)) + "." + p[2]
		}, DPoPRequest{Method: "DELETE", URL: dpopURL}, ErrDPoPProof, "signature"},
		{"wrong htm", c, with(func(cl, _ map[string]any) { cl["htm"] = "POST" }), get, ErrDPoPProof, "htm"},
		{"htm lower case", c, with(func(cl, _ map[string]any) { cl["htm"] = "get" }), get, ErrDPoPProof, "htm"},
		{"wrong htu path", c, with(func(cl, _ map[string]any) { cl["htu"] = "https://api.example.com/admin" }), get, ErrDPoPProof, "htu"},
		{"wrong htu host", c, with(func(cl, _ map[string]any) { cl["htu"] = "https://evil.example.com/invoices" }), get, ErrDPoPProof, "htu"},
		{"htu http for https", c, with(func(cl, _ map[string]any) { cl["htu"] = "http://api.example.com/invoices" }), get, ErrDPoPProof, "htu"},
		{"htu other port", c, with(func(cl, _ map[string]any) { cl["htu"] = "https://api.example.com:8443/invoices" }), get, ErrDPoPProof, "htu"},
		{"htu trailing slash", c, with(func(cl, _ map[string]any) { cl["htu"] = dpopURL + "/" }), get, ErrDPoPProof, "htu"},
		{"htu relative", c, with(func(cl, _ map[string]any) { cl["htu"] = "/invoices" }), get, ErrDPoPProof, "htu"},
		{"htu with user info", c, with(func(cl, _ map[string]any) { cl["htu"] = "https://u@api.example.com/invoices" }), get, ErrDPoPProof, "htu"},
		{"htu missing", c, with(func(cl, _ map[string]any) { delete(cl, "htu") }), get, ErrDPoPProof, "htu"},
		{"stale iat", c, with(func(cl, _ map[string]any) { cl["iat"] = clk.Now().Add(-DefaultDPoPMaxAge - time.Second).Unix() }), get, ErrDPoPProof, "iat"},
		{"iat far in the future", c, with(func(cl, _ map[string]any) { cl["iat"] = clk.Now().Add(DefaultDPoPSkew + time.Second).Unix() }), get, ErrDPoPProof, "iat"},
		{"iat missing", c, with(func(cl, _ map[string]any) { delete(cl, "iat") }), get, ErrDPoPProof, "iat"},
		{"iat a string", c, with(func(cl, _ map[string]any) { cl["iat"] = fmt.Sprint(clk.Now().Unix()) }), get, ErrDPoPProof, "iat"},
		{"jti missing", c, with(func(cl, _ map[string]any) { delete(cl, "jti") }), get, ErrDPoPProof, "jti"},
		{"jti too long", c, with(func(cl, _ map[string]any) { cl["jti"] = strings.Repeat("j", 257) }), get, ErrDPoPProof, "jti"},
		{"jti a number", c, with(func(cl, _ map[string]any) { cl["jti"] = 7 }), get, ErrDPoPProof, "jti"},
		{"ath missing with a token", c, with(func(_, _ map[string]any) {}),
			DPoPRequest{Method: "GET", URL: dpopURL, AccessToken: token}, ErrDPoPProof, "ath"},
		{"ath of another token", c, with(func(cl, _ map[string]any) { cl["ath"] = athOf(token + "x") }),
			DPoPRequest{Method: "GET", URL: dpopURL, AccessToken: token}, ErrDPoPProof, "ath"},
		{"duplicate claim", c, func() string {
			return rawProof(string(mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk})),
				fmt.Sprintf(`{"jti":"dup","htm":"POST","htm":"GET","htu":%q,"iat":%d}`, dpopURL, clk.Now().Unix()))
		}, get, ErrDPoPProof, "duplicate"},
		{"duplicate header member", c, func() string {
			return rawProof(fmt.Sprintf(`{"typ":"dpop+jwt","alg":"ES256","jwk":%s,"jwk":%s}`, mustJSON(t, other.jwk), mustJSON(t, k.jwk)),
				string(mustJSON(t, k.claims(clk.Now()))))
		}, get, ErrDPoPProof, "duplicate"},
		{"not a JWS", c, func() string { return "not-a-proof" }, get, ErrDPoPProof, "segments"},
		{"oversized", c, func() string { return strings.Repeat("A", MaxDPoPProofSize+1) }, get, ErrDPoPProof, "longer"},
		{"bound to another key", c, with(func(_, _ map[string]any) {}),
			DPoPRequest{Method: "GET", URL: dpopURL, BoundTo: other.jkt}, ErrDPoPBinding, "cnf.jkt"},
		{"nonce missing", cn, with(func(_, _ map[string]any) {}), get, ErrDPoPNonce, "nonce"},
		{"nonce wrong", cn, with(func(cl, _ map[string]any) { cl["nonce"] = "made-up" }), get, ErrDPoPNonce, "nonce"},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Proof = tc.proof()
			p, err := tc.c.Check(t.Context(), req)
			if err == nil {
				t.Fatalf("Check accepted the proof: %+v", p)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.words) {
				t.Errorf("error %q does not name %q", err, tc.words)
			}
		})
	}
}

// TestDPoPCheck_Replay: a proof is accepted once; the same jti under
// another key is another proof; a refused proof does not spend its jti.
func TestDPoPCheck_Replay(t *testing.T) {
	clk := newFakeClock()
	c := newTestChecker(t, clk)
	k, other := newDPoPKey(t, "ES256"), newDPoPKey(t, "ES256")
	cl := k.claims(clk.Now())
	proof := k.proof(t, cl, nil)
	req := DPoPRequest{Proof: proof, Method: "GET", URL: dpopURL}

	wrong := req
	wrong.BoundTo = other.jkt
	if _, err := c.Check(t.Context(), wrong); !errors.Is(err, ErrDPoPBinding) {
		t.Fatalf("bound to another key: %v", err)
	}
	if _, err := c.Check(t.Context(), req); err != nil {
		t.Fatalf("first use (after a refusal): %v", err)
	}
	clk.Advance(10 * time.Second)
	if _, err := c.Check(t.Context(), req); !errors.Is(err, ErrDPoPReplay) || !errors.Is(err, ErrDPoPProof) {
		t.Fatalf("replay: %v, want ErrDPoPReplay", err)
	}
	if _, err := c.Check(t.Context(), DPoPRequest{Proof: other.proof(t, cl, nil), Method: "GET", URL: dpopURL}); err != nil {
		t.Fatalf("same jti, other key: %v", err)
	}
	// Once the window is over the proof is stale, so forgetting it is safe.
	clk.Advance(DefaultDPoPMaxAge)
	if _, err := c.Check(t.Context(), req); !errors.Is(err, ErrDPoPProof) || !strings.Contains(err.Error(), "iat") {
		t.Fatalf("replay after the window: %v, want a stale iat", err)
	}
}

// TestDPoPMemoryCache_Bounds: entries expire; a full cache drops the entry
// closest to expiry and then refuses anything expiring as early, so no
// forgotten proof is accepted.
func TestDPoPMemoryCache_Bounds(t *testing.T) {
	clk := newFakeClock()
	ctx := t.Context()
	m := NewDPoPReplayCache(3, clk.Now)
	at := func(s int) time.Time { return clk.Now().Add(time.Duration(s) * time.Second) }
	for i, id := range []string{"a", "b", "c"} {
		if ok, err := m.Remember(ctx, id, at(10+i)); !ok || err != nil {
			t.Fatalf("Remember(%s) = %v, %v", id, ok, err)
		}
	}
	if ok, _ := m.Remember(ctx, "b", at(30)); ok {
		t.Fatal("b accepted twice")
	}
	// Full: d pushes out a (expiring at +10); anything expiring by +10 is
	// now refused, a included.
	if ok, _ := m.Remember(ctx, "d", at(20)); !ok {
		t.Fatal("d refused")
	}
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3", m.Len())
	}
	if ok, _ := m.Remember(ctx, "a", at(10)); ok {
		t.Fatal("a accepted again after eviction")
	}
	if ok, _ := m.Remember(ctx, "e", at(9)); ok {
		t.Fatal("e expiring before the floor accepted")
	}
	// Time passes: b, c (+11, +12) expire and leave on the next call.
	clk.Advance(15 * time.Second)
	if ok, _ := m.Remember(ctx, "f", at(60)); !ok {
		t.Fatal("f refused")
	}
	if m.Len() != 2 {
		t.Fatalf("Len = %d after expiry, want 2 (d, f)", m.Len())
	}
}

// TestDPoPMemoryCache_Concurrent: many goroutines racing to spend the
// same ids; each id is accepted exactly once. Run with -race.
func TestDPoPMemoryCache_Concurrent(t *testing.T) {
	clk := newFakeClock()
	m := NewDPoPReplayCache(1000, clk.Now)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				ok, err := m.Remember(context.Background(), fmt.Sprint(i), clk.Now().Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
				if ok {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 200 {
		t.Fatalf("accepted %d, want 200", accepted.Load())
	}
}

// TestDPoPCheck_ConcurrentReplay: the same proof sent by many goroutines at
// once is accepted by exactly one.
func TestDPoPCheck_ConcurrentReplay(t *testing.T) {
	clk := newFakeClock()
	c := newTestChecker(t, clk)
	k := newDPoPKey(t, "ES256")
	req := DPoPRequest{Proof: k.proof(t, k.claims(clk.Now()), nil), Method: "GET", URL: dpopURL}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Check(context.Background(), req); err == nil {
				accepted.Add(1)
			} else if !errors.Is(err, ErrDPoPReplay) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 1 {
		t.Fatalf("accepted %d times, want 1", accepted.Load())
	}
}

// TestRotatingNonces: the current and the previous nonce are valid; two
// periods on, neither.
func TestRotatingNonces(t *testing.T) {
	clk := newFakeClock()
	n := NewRotatingNonces(time.Minute, clk.Now)
	first := n.Current()
	if !n.Valid(first) || n.Valid("") || n.Valid("other") {
		t.Fatal("first nonce")
	}
	clk.Advance(time.Minute)
	second := n.Current()
	if second == first || !n.Valid(first) || !n.Valid(second) {
		t.Fatal("after one period the previous nonce must stay valid")
	}
	clk.Advance(2 * time.Minute)
	if n.Valid(first) || n.Valid(second) {
		t.Fatal("after two periods old nonces must be invalid")
	}
}

// failingCache is a replay cache whose store is down.
type failingCache struct{}

func (failingCache) Remember(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("store unreachable")
}

// TestDPoPCheck_ReplayCacheDown: a cache that cannot answer refuses the
// proof (fail closed).
func TestDPoPCheck_ReplayCacheDown(t *testing.T) {
	clk := newFakeClock()
	c := newTestChecker(t, clk, WithDPoPReplayCache(failingCache{}))
	k := newDPoPKey(t, "ES256")
	_, err := c.Check(t.Context(), DPoPRequest{Proof: k.proof(t, k.claims(clk.Now()), nil), Method: "GET", URL: dpopURL})
	if !errors.Is(err, ErrDPoPReplayCacheFailed) || !errors.Is(err, ErrDPoPProof) || !strings.Contains(err.Error(), "store unreachable") {
		t.Fatalf("Check = %v, want a refusal naming the cache", err)
	}
}

func TestNewDPoPChecker_Config(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []DPoPOption
		want string
	}{
		{"HS256", []DPoPOption{WithDPoPAlgorithms("HS256")}, `"HS256"`},
		{"none", []DPoPOption{WithDPoPAlgorithms("none")}, `"none"`},
		{"no algs", []DPoPOption{WithDPoPAlgorithms()}, "no allowed"},
		{"window too long", []DPoPOption{WithDPoPWindow(time.Hour, 0)}, "max age"},
		{"window zero", []DPoPOption{WithDPoPWindow(0, 0)}, "max age"},
		{"origin with path", []DPoPOption{WithDPoPOrigin("https://api.example.com/v1")}, "origin"},
		{"origin without scheme", []DPoPOption{WithDPoPOrigin("api.example.com")}, "origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDPoPChecker(tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewDPoPChecker = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	c, err := NewDPoPChecker(WithDPoPAlgorithms("ES256", "EdDSA", "ES256"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Algorithms(); got != "ES256 EdDSA" {
		t.Errorf("Algorithms() = %q", got)
	}
}

func TestNormalizeHTU(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example/x":                  "https://a.example/x",
		"HTTPS://A.EXAMPLE:443/x?q#f":          "https://a.example/x",
		"http://a.example:80":                  "http://a.example/",
		"http://a.example:8080/":               "http://a.example:8080/",
		"https://a.example:80/":                "https://a.example:80/",
		"https://[::1]:8443/p":                 "https://[::1]:8443/p",
		"https://a.example/%7euser/%2f%e2%82":  "https://a.example/~user/%2F%E2%82",
		"https://a.example/a/./b/../c/":        "https://a.example/a/c/",
		"https://a.example/a/b/..":             "https://a.example/a/",
		"https://a.example/../../x":            "https://a.example/x",
		"https://a.example/CaseKept":           "https://a.example/CaseKept",
		"https://a.example/a//b":               "https://a.example/a//b",
		"https://a.example/...":                "https://a.example/...",
		"https://a.example/p;param?x=y#frag":   "https://a.example/p;param",
		"https://a.example/sp%20ace":           "https://a.example/sp%20ace",
		"https://a.example/%41%42c":            "https://a.example/ABc",
		"https://a.example/a%2E%2E/b":          "https://a.example/a../b",
		"https://a.example/x/%2E%2E/y":         "https://a.example/y",
		"https://xn--bcher-kva.example/b":      "https://xn--bcher-kva.example/b",
		"https://a.example:443":                "https://a.example/",
		"https://a.example/?":                  "https://a.example/",
		"https://a.example#frag":               "https://a.example/",
		"https://a.example/%zz":                "",
		"ftp://a.example/x":                    "",
		"https:///x":                           "",
		"mailto:a@example.com":                 "",
		"https://user:pw@a.example/x":          "",
		"/relative":                            "",
		"":                                     "",
		"https://a.example/\x00":               "",
		"https://a.example/" + "%2e%2E/secret": "https://a.example/secret",
	} {
		got, err := normalizeHTU(in)
		if want == "" {
			if err == nil {
				t.Errorf("normalizeHTU(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("normalizeHTU(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
}

// BenchmarkVerifyDPoP measures, for each algorithm (of both the token and
// the proof), Verify of an access token alone ("verify", the same work as
// BenchmarkVerify) and Verify followed by Check of a fresh proof for it
// ("verify+dpop"), each reporting the process's CPU per operation
// (cpu-ns/op), which a loaded machine disturbs less than wall time. Proofs
// are signed before the timer starts.
func BenchmarkVerifyDPoP(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		for _, withProof := range []bool{false, true} {
			name := alg + "/verify"
			if withProof {
				name += "+dpop"
			}
			b.Run(name, func(b *testing.B) {
				v, _, _, tok := benchSetup(b, alg)
				ctx := b.Context()
				k := newDPoPKey(b, alg)
				// The widest window: signing a pool of RSA proofs on a
				// loaded machine can take longer than the default minute.
				c, err := NewDPoPChecker(WithDPoPWindow(MaxDPoPWindow, DefaultDPoPSkew))
				if err != nil {
					b.Fatal(err)
				}
				const pool = 1024
				proofs := make([]string, pool)
				sign := func() {
					for j := range proofs {
						cl := k.claims(time.Now())
						cl["ath"] = athOf(tok)
						proofs[j] = k.proof(b, cl, nil)
					}
					runtime.GC() // the signing's garbage is not the checker's cost
				}
				if withProof {
					sign()
				}
				b.ReportAllocs()
				var cpu time.Duration
				start := processCPU()
				i := 0
				for b.Loop() {
					if withProof && i == pool {
						// Out of fresh proofs: make more, off the clock.
						b.StopTimer()
						cpu += processCPU() - start
						sign()
						i = 0
						start = processCPU()
						b.StartTimer()
					}
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Fatal(err)
					}
					if withProof {
						if _, err := c.Check(ctx, DPoPRequest{Proof: proofs[i], Method: "GET", URL: dpopURL, AccessToken: tok}); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
				cpu += processCPU() - start
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// TestKeyedNonces: two replicas with the same key take each other's
// nonces, the previous window's too; two periods on, neither; another key's
// nonce never; a short key is refused.
func TestKeyedNonces(t *testing.T) {
	clk := newFakeClock()
	key := bytes.Repeat([]byte{9}, 32)
	a, err := NewKeyedNonces(key, time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewKeyedNonces(key, time.Minute, clk.Now)
	other, _ := NewKeyedNonces(bytes.Repeat([]byte{8}, 32), time.Minute, clk.Now)
	first := a.Current()
	if !b.Valid(first) || other.Valid(first) || a.Valid("") || a.Valid(first[:len(first)-1]) {
		t.Fatal("first nonce")
	}
	clk.Advance(time.Minute)
	second := b.Current()
	if second == first || !a.Valid(first) || !a.Valid(second) {
		t.Fatal("after one period the previous nonce must stay valid")
	}
	clk.Advance(2 * time.Minute)
	if a.Valid(first) || b.Valid(second) {
		t.Fatal("after two periods old nonces must be invalid")
	}
	if _, err := NewKeyedNonces(key[:31], time.Minute, nil); err == nil {
		t.Fatal("a 31-byte key was taken")
	}
}
