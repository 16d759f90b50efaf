package jwks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

const setIssuer = "https://auth.example.com"

// setFixture is an issuer's token keys, its set-signing key, and a file
// that holds the signed set a verifier loads.
type setFixture struct {
	t      *testing.T
	clk    *fakeClock
	es, rs *testKey // token keys
	signer *testKey // the set-signing key
	path   string
	pins   []byte
}

func newSetFixture(t *testing.T) *setFixture {
	f := &setFixture{t: t, clk: newFakeClock(), es: newTestKey(t, "ES256"), rs: newTestKey(t, "RS256"), signer: newTestKey(t, "ES256")}
	f.path = filepath.Join(t.TempDir(), "jws")
	f.pins = pinsOf(t, f.signer)
	return f
}

func pinsOf(t *testing.T, ks ...*testKey) []byte {
	var keys []jwk.Key
	for _, k := range ks {
		keys = append(keys, k.pub)
	}
	return mustJSON(t, map[string]any{"keys": keys})
}

// signedSet is what `signet jwks export` writes: a compact JWS, typ
// jwk-set+jwt, payload {iss, iat, exp, keys}.
func (f *setFixture) signedSet(by *testKey, iat time.Time, ttl time.Duration, keys ...*testKey) string {
	var pubs []jwk.Key
	for _, k := range keys {
		pubs = append(pubs, k.pub)
	}
	payload := mustJSON(f.t, map[string]any{"iss": setIssuer, "iat": iat.Unix(), "exp": iat.Add(ttl).Unix(), "keys": pubs})
	hdr := mustJSON(f.t, map[string]any{"alg": by.alg, "kid": by.kid, "typ": SignedSetType})
	return signRaw(f.t, by, by.alg, hdr, payload)
}

func (f *setFixture) write(doc string) {
	if err := os.WriteFile(f.path, []byte(doc), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *setFixture) open(opts SignedSetOptions) (*Verifier, error) {
	if opts.Pins == nil {
		opts.Pins = f.pins
	}
	return NewSignedSetVerifier(f.t.Context(), setIssuer, f.path, opts,
		WithAudience("api"), WithClock(f.clk.Now))
}

func (f *setFixture) token(k *testKey, extra map[string]any) string {
	now := f.clk.Now()
	return sign(f.t, k, map[string]any{"iss": setIssuer, "aud": "api", "sub": "s", "jti": "j1", "client_id": "c", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, extra)
}

// TestSignedSet_Accepts: a verifier that loads an exported set from a file
// accepts tokens signed by the set's keys, of each algorithm.
func TestSignedSet_Accepts(t *testing.T) {
	f := newSetFixture(t)
	f.write(f.signedSet(f.signer, f.clk.Now(), time.Hour, f.es, f.rs))
	v, err := f.open(SignedSetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, k := range []*testKey{f.es, f.rs} {
		if _, err := v.Verify(t.Context(), f.token(k, nil)); err != nil {
			t.Errorf("%s token: %v", k.alg, err)
		}
	}
	if got := v.SignedSetIssuedAt(); !got.Equal(time.Unix(f.clk.Now().Unix(), 0)) {
		t.Errorf("SignedSetIssuedAt = %v", got)
	}
	if err := v.Healthy(); err != nil {
		t.Errorf("Healthy = %v", err)
	}
}

// TestSignedSet_RefusedSets is the attack table for loading a set: each
// row is a document an attacker (or an accident) could put where the
// verifier reads its set; every one is refused with ErrSignedSet.
func TestSignedSet_RefusedSets(t *testing.T) {
	f := newSetFixture(t)
	attacker := newTestKey(t, "ES256")
	now := f.clk.Now()
	good := f.signedSet(f.signer, now, time.Hour, f.es)
	parts := strings.Split(good, ".")
	// tampered keys: the attacker's key put in the payload, the signature kept.
	tamperedPayload := b64u(mustJSON(t, map[string]any{"iss": setIssuer, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "keys": []jwk.Key{attacker.pub}}))
	// a replaced signer: the attacker signs with its own key under the pinned kid.
	impostor := *attacker
	impostor.kid = f.signer.kid
	// an algorithm mismatch: the pinned ES256 signer's kid with alg RS256.
	rsSigner := newTestKey(t, "RS256")
	mismatch := signRaw(t, rsSigner, "RS256", mustJSON(t, map[string]any{"alg": "RS256", "kid": f.signer.kid, "typ": SignedSetType}),
		mustJSON(t, map[string]any{"iss": setIssuer, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "keys": []jwk.Key{f.es.pub}}))
	noneAlg := b64u([]byte(`{"alg":"none","kid":"`+f.signer.kid+`","typ":"jwk-set+jwt"}`)) + "." + parts[1] + "."
	for _, tc := range []struct {
		name string
		doc  string
		want error
	}{
		{"unsigned: a plain JWK Set", string(mustJSON(t, map[string]any{"keys": []jwk.Key{f.es.pub}})), ErrSignedSet},
		{"tampered keys", parts[0] + "." + tamperedPayload + "." + parts[2], ErrInvalidSignature},
		{"replaced signer key under the pinned kid", f.signedSet(&impostor, now, time.Hour, attacker), ErrInvalidSignature},
		{"signer not pinned", f.signedSet(attacker, now, time.Hour, attacker), ErrSignedSet},
		{"alg of the header differs from the pinned key's", mismatch, ErrAlgorithmMismatch},
		{"alg none", noneAlg, ErrUnsupportedAlgorithm},
		{"expired", f.signedSet(f.signer, now.Add(-2*time.Hour), time.Hour, f.es), ErrSetExpired},
		{"issued in the future", f.signedSet(f.signer, now.Add(time.Hour), time.Hour, f.es), ErrIssuedInFuture},
		{"a token, not a set", f.token(f.signer, nil), ErrSignedSet},
		{"garbage", "not a jws", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.write(tc.doc)
			v, err := f.open(SignedSetOptions{})
			if err == nil {
				v.Close()
				t.Fatal("set accepted")
			}
			if !errors.Is(err, ErrSignedSet) {
				t.Errorf("err = %v, want ErrSignedSet", err)
			}
			if tc.want == ErrUnsupportedAlgorithm {
				// none has no pinned key of that alg: a mismatch or unsupported.
				if !errors.Is(err, ErrAlgorithmMismatch) && !errors.Is(err, ErrUnsupportedAlgorithm) {
					t.Errorf("err = %v, want an algorithm refusal", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("wrong issuer", func(t *testing.T) {
		f.write(f.signedSet(f.signer, now, time.Hour, f.es))
		_, err := NewSignedSetVerifier(t.Context(), "https://other.example.com", f.path, SignedSetOptions{Pins: f.pins},
			WithAudience("api"), WithClock(f.clk.Now))
		if !errors.Is(err, ErrIssuer) {
			t.Errorf("err = %v, want ErrIssuer", err)
		}
	})
}

// TestSignedSet_Tokens: with a set loaded, a token whose kid is not in the
// set is refused (no fetch: the set is all there is), a token whose alg
// differs from its key's is refused, and after the set's exp every token
// is refused until a newer set is loaded.
func TestSignedSet_Tokens(t *testing.T) {
	f := newSetFixture(t)
	f.write(f.signedSet(f.signer, f.clk.Now(), time.Hour, f.es, f.rs))
	v, err := f.open(SignedSetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	other := newTestKey(t, "ES256")
	if _, err := v.Verify(t.Context(), f.token(other, nil)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token of a kid not in the set: %v, want ErrUnknownKey", err)
	}
	// The RSA key's kid with alg PS256 (same key bytes, other algorithm).
	psForged := f.token(f.rs, map[string]any{"alg": "PS256"})
	if _, err := v.Verify(t.Context(), psForged); !errors.Is(err, ErrAlgorithmMismatch) {
		t.Errorf("RS256 key used as PS256: %v, want ErrAlgorithmMismatch", err)
	}
	// The ES256 key's kid claimed as RS256.
	esAsRS := f.token(f.rs, map[string]any{"kid": f.es.kid})
	if _, err := v.Verify(t.Context(), esAsRS); !errors.Is(err, ErrAlgorithmMismatch) {
		t.Errorf("ES256 kid with an RS256 token: %v, want ErrAlgorithmMismatch", err)
	}

	f.clk.Advance(time.Hour + DefaultLeeway)
	if _, err := v.Verify(t.Context(), f.token(f.es, nil)); !errors.Is(err, ErrSetExpired) {
		t.Errorf("token after the set's exp: %v, want ErrSetExpired", err)
	}
	if err := v.Healthy(); !errors.Is(err, ErrSetExpired) {
		t.Errorf("Healthy after exp = %v, want ErrSetExpired", err)
	}
	f.write(f.signedSet(f.signer, f.clk.Now(), time.Hour, f.es))
	if err := v.ReloadSignedSet(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), f.token(f.es, nil)); err != nil {
		t.Errorf("after loading a fresh set: %v", err)
	}
}

// TestSignedSet_ReplayAfterRevocation: the issuer revokes a key and exports
// a newer set without it. An attacker who kept the older set (still within
// its exp, and validly signed) puts it back: the verifier that has seen the
// newer one refuses it, and so does a restarted verifier given the iat it
// persisted; the revoked key's tokens stay refused.
func TestSignedSet_ReplayAfterRevocation(t *testing.T) {
	f := newSetFixture(t)
	old := f.signedSet(f.signer, f.clk.Now(), 24*time.Hour, f.es, f.rs)
	f.clk.Advance(time.Minute)
	revokedES := f.signedSet(f.signer, f.clk.Now(), 24*time.Hour, f.rs)
	f.write(revokedES)
	v, err := f.open(SignedSetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok := f.token(f.es, nil)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("revoked key's token: %v, want ErrUnknownKey", err)
	}
	f.write(old)
	if err := v.ReloadSignedSet(t.Context()); !errors.Is(err, ErrSignedSet) || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("replayed older set: %v, want a refusal naming the replay", err)
	}
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after the replay attempt the revoked key's token: %v, want ErrUnknownKey", err)
	}
	if _, err := f.open(SignedSetOptions{MinIssuedAt: v.SignedSetIssuedAt()}); !errors.Is(err, ErrSignedSet) {
		t.Errorf("restarted verifier with the persisted iat accepted the older set: %v", err)
	}
	// A different set with the same iat as the one accepted: a replay too
	// (Signet never issues two sets in one second).
	f.write(f.signedSet(f.signer, v.SignedSetIssuedAt(), 24*time.Hour, f.es, f.rs))
	if err := v.ReloadSignedSet(t.Context()); !errors.Is(err, ErrSignedSet) {
		t.Errorf("another set with the accepted iat: %v, want a refusal", err)
	}
	// The same set again is not a replay.
	f.write(revokedES)
	if err := v.ReloadSignedSet(t.Context()); err != nil {
		t.Errorf("reloading the same set: %v", err)
	}
}

// TestSignedSet_SignerRotation: pinning the pending set-signing key beside
// the active one lets the issuer rotate its set-signing key without
// stranding verifiers; a set signed by a key pinned nowhere is refused.
func TestSignedSet_SignerRotation(t *testing.T) {
	f := newSetFixture(t)
	next := newTestKey(t, "ES256")
	f.pins = pinsOf(t, f.signer, next)
	f.write(f.signedSet(f.signer, f.clk.Now(), time.Hour, f.es))
	v, err := f.open(SignedSetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	f.clk.Advance(time.Minute)
	f.write(f.signedSet(next, f.clk.Now(), time.Hour, f.es))
	if err := v.ReloadSignedSet(t.Context()); err != nil {
		t.Errorf("set signed by the pinned next signer: %v", err)
	}
	if _, err := NewSignedSetVerifier(t.Context(), setIssuer, f.path, SignedSetOptions{Pins: []byte(`{"keys":[]}`)}, WithAudience("api")); err == nil {
		t.Error("a verifier without pins was created")
	}
}
