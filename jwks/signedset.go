package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// SignedSetType is the typ of a signed key set: a JWS (compact) whose
// payload is a JWK Set with the claims iss, iat and exp, the shape OpenID
// Federation uses for signed JWK Sets. `signet jwks export` writes one.
const SignedSetType = "jwk-set+jwt"

// maxSignedSetBytes bounds a signed set read from a file or a URL.
const maxSignedSetBytes = 1 << 20

var (
	// ErrSignedSet: a signed key set was refused: unsigned, malformed, a
	// signature or signer that does not match the pins, the wrong issuer,
	// expired, or older than one already accepted (a replay).
	ErrSignedSet = errors.New("jwks: signed key set refused")
	// ErrSetExpired: a token was presented after the exp of the signed key
	// set its key came from; load a newer set.
	ErrSetExpired = errors.New("jwks: signed key set expired")
)

// SignedSetOptions configure NewSignedSetVerifier.
type SignedSetOptions struct {
	// Pins is a JWK Set (JSON) of the set-signing public keys the verifier
	// trusts, each with kid and alg: `signet jwks signers` prints it. A
	// set signed by any other key is refused. Pin the pending signer too,
	// so that a rotation of the set-signing key does not strand you.
	Pins []byte
	// MinIssuedAt refuses sets issued before it: give the IssuedAt of the
	// last set this verifier accepted (kept across restarts by the caller)
	// so that an old set, from before a revocation, cannot be replayed.
	MinIssuedAt time.Time
}

type signedState struct {
	src  string
	pins map[string]*verifyKey
	mu   sync.Mutex
	iat  time.Time // of the last accepted set: never go back
	last string    // the last accepted document: the one set that may share its iat
}

// NewSignedSetVerifier is a verifier for a service that cannot reach the
// issuer: it loads a signed key set from src (a file path, or an https URL)
// instead of discovery and the JWKS, checks its signature against the pinned
// set-signing keys, its iss against issuer and its exp, and then verifies
// tokens exactly as NewVerifier's does (algorithm from the key, typ, iss,
// aud, exp). A token whose kid is not in the set is refused (there is no
// refetch); after the set's exp every token is refused with ErrSetExpired
// until ReloadSignedSet brings a newer set. There is no background refresh.
func NewSignedSetVerifier(ctx context.Context, issuer, src string, so SignedSetOptions, opts ...Option) (*Verifier, error) {
	c := config{
		leeway:      DefaultLeeway,
		algs:        DefaultAlgorithms(),
		typ:         "at+jwt",
		client:      http.DefaultClient,
		minInterval: DefaultMinRefreshInterval,
		now:         time.Now,
		after:       time.After,
	}
	for _, o := range opts {
		o(&c)
	}
	v, err := newVerifier(issuer, c)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(src, "://") {
		// A file: nothing to check.
	} else if err := checkURL(src, c.plainHTTP); err != nil {
		return nil, fmt.Errorf("jwks: signed set: %w", err)
	}
	st := &signedState{src: src, pins: map[string]*verifyKey{}, iat: so.MinIssuedAt}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(so.Pins, &doc); err != nil {
		return nil, fmt.Errorf("jwks: signed set pins: %w", err)
	}
	for i, raw := range doc.Keys {
		k, err := v.acceptKey(raw)
		if err != nil {
			return nil, fmt.Errorf("jwks: signed set pin %d: %w", i, err)
		}
		st.pins[k.kid] = k
	}
	if len(st.pins) == 0 {
		return nil, fmt.Errorf("jwks: signed set: no pinned set-signing key")
	}
	v.signed = st
	// No refresher: Close has nothing to stop.
	v.stop = func(error) {}
	close(v.stopped)
	if err := v.ReloadSignedSet(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// ReloadSignedSet reads the signed set again and swaps it in if it is
// valid and not older than the last one accepted; on any error the current
// set stays.
func (v *Verifier) ReloadSignedSet(ctx context.Context) error {
	st := v.signed
	if st == nil {
		return errors.New("jwks: not a signed-set verifier")
	}
	body, err := v.readSignedSet(ctx, st.src)
	if err != nil {
		return fmt.Errorf("jwks: read signed set %s: %w", st.src, err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	inner, iat, exp, err := v.openSignedSet(body, st)
	if err != nil {
		return err
	}
	snap, err := v.parseKeySet(ctx, inner)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignedSet, err)
	}
	snap.expires = exp
	v.keys.Store(snap)
	st.iat, st.last = iat, strings.TrimSpace(string(body))
	return nil
}

// SignedSetIssuedAt is the iat of the signed set in use: persist it and
// pass it back as SignedSetOptions.MinIssuedAt after a restart.
func (v *Verifier) SignedSetIssuedAt() time.Time {
	if v.signed == nil {
		return time.Time{}
	}
	v.signed.mu.Lock()
	defer v.signed.mu.Unlock()
	return v.signed.iat
}

func (v *Verifier) readSignedSet(ctx context.Context, src string) ([]byte, error) {
	if !strings.Contains(src, "://") {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSignedSetBytes+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxSignedSetBytes {
			return nil, fmt.Errorf("larger than %d bytes", maxSignedSetBytes)
		}
		return b, nil
	}
	body, _, _, err := v.get(ctx, &source{name: "signed set", url: src, limit: maxSignedSetBytes})
	return body, err
}

// openSignedSet checks a signed set and returns its JWK Set, iat and exp.
// The algorithm comes from the pinned key, never from the header alone:
// the header must name a pinned kid and that key's alg.
func (v *Verifier) openSignedSet(body []byte, st *signedState) (keys []byte, iat, exp time.Time, err error) {
	doc := strings.TrimSpace(string(body))
	if strings.HasPrefix(doc, "{") {
		return nil, iat, exp, fmt.Errorf("%w: the set is not signed (a plain JWK Set)", ErrSignedSet)
	}
	d1, d2, err := splitCompact(doc)
	if err != nil {
		return nil, iat, exp, fmt.Errorf("%w: %w", ErrSignedSet, err)
	}
	h, err := parseHeader(doc[:d1])
	if err != nil {
		return nil, iat, exp, fmt.Errorf("%w: %w", ErrSignedSet, err)
	}
	if !h.hasTyp || normalizeType(h.typ) != SignedSetType {
		return nil, iat, exp, fmt.Errorf("%w: typ %q, want %s", ErrSignedSet, safeForMessage(h.typ), SignedSetType)
	}
	pin, ok := st.pins[h.kid]
	if !ok {
		return nil, iat, exp, fmt.Errorf("%w: signed by kid %q, which is not pinned", ErrSignedSet, safeForMessage(h.kid))
	}
	if string(pin.alg) != h.alg {
		return nil, iat, exp, fmt.Errorf("%w: header alg %q, the pinned key's is %s: %w", ErrSignedSet, safeForMessage(h.alg), pin.alg, ErrAlgorithmMismatch)
	}
	sig, err := b64.DecodeString(doc[d2+1:])
	if err != nil {
		return nil, iat, exp, fmt.Errorf("%w: decode signature: %w", ErrSignedSet, ErrMalformed)
	}
	if !pin.verify([]byte(doc[:d2]), sig) {
		return nil, iat, exp, fmt.Errorf("%w: %w", ErrSignedSet, ErrInvalidSignature)
	}
	payload, err := b64.DecodeString(doc[d1+1 : d2])
	if err != nil {
		return nil, iat, exp, fmt.Errorf("%w: decode payload: %w", ErrSignedSet, ErrMalformed)
	}
	var p struct {
		Iss  string          `json:"iss"`
		Iat  *int64          `json:"iat"`
		Exp  *int64          `json:"exp"`
		Keys json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, iat, exp, fmt.Errorf("%w: payload: %w", ErrSignedSet, ErrMalformed)
	}
	if p.Iss != v.issuer {
		return nil, iat, exp, fmt.Errorf("%w: iss %q, want %q: %w", ErrSignedSet, safeForMessage(p.Iss), v.issuer, ErrIssuer)
	}
	if p.Iat == nil || p.Exp == nil || len(p.Keys) == 0 {
		return nil, iat, exp, fmt.Errorf("%w: iat, exp and keys are required: %w", ErrSignedSet, ErrMissingClaim)
	}
	iat, exp = time.Unix(*p.Iat, 0), time.Unix(*p.Exp, 0)
	now := v.now()
	if !now.Before(exp.Add(v.leeway)) {
		return nil, iat, exp, fmt.Errorf("%w: expired at %s: %w", ErrSignedSet, exp.UTC().Format(time.RFC3339), ErrSetExpired)
	}
	if iat.After(now.Add(v.leeway)) {
		return nil, iat, exp, fmt.Errorf("%w: issued in the future: %w", ErrSignedSet, ErrIssuedInFuture)
	}
	// Signet's exporter gives every set a strictly newer iat, so a second,
	// different set with the iat already seen is a replay too.
	if iat.Before(st.iat) || (st.last != "" && !iat.After(st.iat) && doc != st.last) {
		return nil, iat, exp, fmt.Errorf("%w: issued at %s, before the set already accepted (%s): a replay of an older set",
			ErrSignedSet, iat.UTC().Format(time.RFC3339), st.iat.UTC().Format(time.RFC3339))
	}
	keysDoc, err := json.Marshal(struct {
		Keys json.RawMessage `json:"keys"`
	}{p.Keys})
	if err != nil {
		return nil, iat, exp, err
	}
	return keysDoc, iat, exp, nil
}
