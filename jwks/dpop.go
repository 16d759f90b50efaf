package jwks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// DPoP (RFC 9449): a client proves, on each request, that it holds the
// private key an access token is bound to. The proof is a small JWT signed
// with that key, whose public half travels in the proof's own header; the
// token names the key by its RFC 7638 thumbprint in cnf.jkt.

// Limits and defaults of the DPoP checker.
const (
	// MaxDPoPProofSize is the longest DPoP header parsed. A proof carrying
	// a 4096-bit RSA key and its signature is under 2 KiB.
	MaxDPoPProofSize = 8 << 10

	// DefaultDPoPMaxAge is how far in the past a proof's iat may lie. A
	// proof is made for one request just before it is sent; a minute covers
	// a slow network and ordinary clock skew, and bounds how long the replay
	// cache must remember a jti.
	DefaultDPoPMaxAge = 60 * time.Second
	// DefaultDPoPSkew is how far in the future iat may lie (a client clock
	// running ahead).
	DefaultDPoPSkew = 30 * time.Second
	// MaxDPoPWindow bounds both: a longer window keeps proofs replayable
	// (and the replay cache growing) for no clock a client really has.
	MaxDPoPWindow = 10 * time.Minute

	// DefaultDPoPReplayCacheSize is the number of proofs the in-memory
	// replay cache remembers (about 150 bytes each).
	DefaultDPoPReplayCacheSize = 50_000

	maxJTILength = 256
	minRSABits   = 2048
	maxRSABits   = 8192
)

// DPoP errors. A refused proof wraps ErrDPoPProof (RFC 9449 §7.1
// invalid_dpop_proof); a replayed one wraps ErrDPoPReplay, which wraps
// ErrDPoPProof too.
var (
	// ErrDPoPProof: the proof is malformed, has the wrong typ, a refused
	// alg, a jwk that is private, symmetric or does not fit the alg, a bad
	// signature, or an htm, htu, iat or ath that does not match the request.
	ErrDPoPProof = errors.New("jwks: invalid DPoP proof")
	// ErrDPoPReplay: the proof's jti was seen before (within its window).
	ErrDPoPReplay = fmt.Errorf("jwks: DPoP proof replayed: %w", ErrDPoPProof)
	// ErrDPoPNonce: the server requires a nonce and the proof has none, or
	// one no longer current (RFC 9449 §8 and §9, use_dpop_nonce).
	ErrDPoPNonce = errors.New("jwks: DPoP nonce required")
	// ErrDPoPBinding: the proof's key is not the key the access token is
	// bound to (cnf.jkt); a bound token presented without a proof (as
	// Bearer); or a token not bound to any key presented as DPoP.
	ErrDPoPBinding = errors.New("jwks: access token not bound to the DPoP key")
	// ErrDPoPReplayCacheFailed: the replay cache could not answer (its
	// store is down), so the proof is refused; it wraps ErrDPoPProof too.
	// A server may answer it as its own failure rather than the client's.
	ErrDPoPReplayCacheFailed = fmt.Errorf("jwks: DPoP replay cache failed: %w", ErrDPoPProof)
)

// DPoPReplayCache remembers the proofs a checker accepted, so a proof is
// accepted once. The checker's default is an in-memory cache
// (NewDPoPReplayCache); several replicas of a server share one through
// their store.
type DPoPReplayCache interface {
	// Remember records id until expires and reports whether id was new. A
	// cache that cannot tell (full, or its store unreachable) must answer
	// false or an error: the proof is then refused, never accepted twice.
	Remember(ctx context.Context, id string, expires time.Time) (fresh bool, err error)
}

// DPoPNonces issues and checks server-provided nonces (RFC 9449 §8, §9).
type DPoPNonces interface {
	// Valid reports whether nonce is one the server issued and still takes.
	Valid(nonce string) bool
	// Current is the nonce to send to the client in a DPoP-Nonce header.
	Current() string
}

// DPoPOption configures a DPoPChecker.
type DPoPOption func(*dpopConfig)

type dpopConfig struct {
	algs   []string
	maxAge time.Duration
	skew   time.Duration
	now    func() time.Time
	replay DPoPReplayCache
	nonces DPoPNonces
	origin string
}

// DefaultDPoPAlgorithms are the algorithms a proof may be signed with
// unless WithDPoPAlgorithms says otherwise: DefaultAlgorithms and Ed25519,
// RFC 9864's fully-specified name for EdDSA with an Ed25519 key, which
// current clients (oauth4webapi, so openid-client) send for Ed25519 keys.
func DefaultDPoPAlgorithms() []string { return append(DefaultAlgorithms(), "Ed25519") }

// WithDPoPAlgorithms sets the algorithms a proof may be signed with
// (default DefaultDPoPAlgorithms). Only asymmetric algorithms are accepted.
func WithDPoPAlgorithms(algs ...string) DPoPOption {
	return func(c *dpopConfig) { c.algs = append([]string(nil), algs...) }
}

// WithDPoPWindow sets how far in the past (maxAge) and in the future (skew)
// a proof's iat may lie; each at most MaxDPoPWindow.
func WithDPoPWindow(maxAge, skew time.Duration) DPoPOption {
	return func(c *dpopConfig) { c.maxAge, c.skew = maxAge, skew }
}

// WithDPoPClock replaces time.Now, for tests.
func WithDPoPClock(now func() time.Time) DPoPOption { return func(c *dpopConfig) { c.now = now } }

// WithDPoPReplayCache replaces the in-memory replay cache, for a server
// whose replicas must refuse a proof another replica accepted.
func WithDPoPReplayCache(rc DPoPReplayCache) DPoPOption {
	return func(c *dpopConfig) { c.replay = rc }
}

// WithDPoPNonces makes every proof carry a nonce that n takes.
func WithDPoPNonces(n DPoPNonces) DPoPOption { return func(c *dpopConfig) { c.nonces = n } }

// WithDPoPOrigin sets the scheme and authority clients use to reach the
// service ("https://api.example.com"), which VerifyRequest puts before the
// request path to get the URL htu must match. Without it the URL is taken
// from the request itself (https when it arrived over TLS, and its Host):
// behind a proxy that terminates TLS or rewrites Host, set it.
func WithDPoPOrigin(origin string) DPoPOption { return func(c *dpopConfig) { c.origin = origin } }

// DPoPChecker checks DPoP proofs (RFC 9449 §4.3). It is safe for concurrent
// use; build one per service (its replay cache is what makes a proof single
// use) and hand it to the Verifier with WithDPoP, or call Check directly.
type DPoPChecker struct {
	algs    map[string]dpopAlg
	algList string // space-separated, for WWW-Authenticate algs=
	maxAge  time.Duration
	skew    time.Duration
	now     func() time.Time
	replay  DPoPReplayCache
	nonces  DPoPNonces
	origin  string // normalised, without a trailing slash; "" when unset

	// headers caches checked proof headers by their encoded bytes: a
	// client's proofs all carry the same header (typ, alg, its public
	// key), so its JSON and key are parsed and checked once, and the key
	// parsed once keeps crypto's per-key precomputation (a fresh
	// *ecdsa.PublicKey or *rsa.PublicKey per proof would redo it). Only
	// headers that passed every check are kept. Bounded: cleared when full.
	headersMu sync.Mutex
	headers   map[string]*proofHeader
}

// proofHeader is a checked proof header: its algorithm and public key.
type proofHeader struct {
	alg dpopAlg
	key any
	jkt string
}

// Bounds of the header cache: entries, and the longest header cached (a
// header with a 4096-bit RSA jwk is about 1 KiB of base64url).
const (
	maxCachedHeaders    = 4096
	maxCachedHeaderSize = 2 << 10
)

// header checks the encoded protected header of a proof, through the
// cache: typ dpop+jwt, an allowed alg, and a public jwk that fits it.
func (c *DPoPChecker) header(seg string) (*proofHeader, error) {
	cacheable := len(seg) <= maxCachedHeaderSize
	if cacheable {
		c.headersMu.Lock()
		ph, ok := c.headers[seg]
		c.headersMu.Unlock()
		if ok {
			return ph, nil
		}
	}
	h, err := parseDPoPHeader(seg)
	if err != nil {
		return nil, err
	}
	alg, ok := c.algs[h.alg]
	if !ok {
		return nil, fmt.Errorf("alg %q not allowed: %w", safeForMessage(h.alg), ErrDPoPProof)
	}
	if normalizeType(h.typ) != "dpop+jwt" {
		return nil, fmt.Errorf("typ %q: %w", safeForMessage(h.typ), ErrDPoPProof)
	}
	key, jkt, err := parseDPoPKey(h.jwk, alg)
	if err != nil {
		return nil, err
	}
	ph := &proofHeader{alg: alg, key: key, jkt: jkt}
	if cacheable {
		c.headersMu.Lock()
		if len(c.headers) >= maxCachedHeaders {
			clear(c.headers)
		}
		c.headers[seg] = ph
		c.headersMu.Unlock()
	}
	return ph, nil
}

// dpopAlg is an allowed algorithm: the key type and curve it needs and
// jwx's verifier for it, built once.
type dpopAlg struct {
	name     string
	kty      string         // "RSA", "EC" or "OKP"
	curve    elliptic.Curve // EC only
	verifier jws.Verifier
}

// NewDPoPChecker returns a checker; with no options it takes proofs signed
// with DefaultDPoPAlgorithms, iat from DefaultDPoPMaxAge ago to DefaultDPoPSkew
// ahead, and remembers jtis in an in-memory cache of
// DefaultDPoPReplayCacheSize proofs.
func NewDPoPChecker(opts ...DPoPOption) (*DPoPChecker, error) {
	c := dpopConfig{algs: DefaultDPoPAlgorithms(), maxAge: DefaultDPoPMaxAge, skew: DefaultDPoPSkew, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	var errs []error
	if c.maxAge <= 0 || c.maxAge > MaxDPoPWindow || c.skew < 0 || c.skew > MaxDPoPWindow {
		errs = append(errs, fmt.Errorf("DPoP window: max age %s must be in (0, %s] and skew %s in [0, %[2]s]",
			c.maxAge, MaxDPoPWindow, c.skew))
	}
	if c.now == nil {
		errs = append(errs, errors.New("DPoP clock is nil"))
	}
	algs := make(map[string]dpopAlg, len(c.algs))
	var names []string
	for _, a := range c.algs {
		da, err := newDPoPAlg(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := algs[a]; !dup {
			algs[a] = da
			names = append(names, a)
		}
	}
	if len(algs) == 0 {
		errs = append(errs, errors.New("no allowed DPoP algorithms"))
	}
	var origin string
	if c.origin != "" {
		u, err := url.Parse(c.origin)
		if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("DPoP origin %q: want scheme://host[:port], nothing else", c.origin))
		} else if origin, err = normalizeHTU(strings.TrimSuffix(c.origin, "/") + "/"); err != nil {
			errs = append(errs, fmt.Errorf("DPoP origin: %w", err))
		}
		origin = strings.TrimSuffix(origin, "/")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("jwks: new DPoP checker: %w", err)
	}
	replay := c.replay
	if replay == nil {
		replay = NewDPoPReplayCache(DefaultDPoPReplayCacheSize, c.now)
	}
	return &DPoPChecker{algs: algs, algList: strings.Join(names, " "), maxAge: c.maxAge, skew: c.skew,
		now: c.now, replay: replay, nonces: c.nonces, origin: origin, headers: map[string]*proofHeader{}}, nil
}

func newDPoPAlg(name string) (dpopAlg, error) {
	sa, ok := supportedAlgorithms[name]
	if name == "Ed25519" {
		sa, ok = jwa.EdDSA, true // RFC 9864: EdDSA with Ed25519, and only that curve
	}
	if !ok {
		return dpopAlg{}, fmt.Errorf("DPoP algorithm %q is not an allowed asymmetric algorithm", name)
	}
	ver, err := jws.NewVerifier(sa)
	if err != nil {
		return dpopAlg{}, fmt.Errorf("DPoP algorithm %s: %w", name, err)
	}
	da := dpopAlg{name: name, verifier: ver}
	switch sa {
	case jwa.ES256, jwa.ES384, jwa.ES512:
		da.kty, da.curve = "EC", curves[sa]
	case jwa.EdDSA:
		da.kty = "OKP"
	default:
		da.kty = "RSA"
	}
	return da, nil
}

// Algorithms are the proof algorithms the checker takes, space-separated
// (the algs parameter of a DPoP challenge, RFC 9449 §7.1).
func (c *DPoPChecker) Algorithms() string { return c.algList }

// Nonce is the nonce to send in a DPoP-Nonce header, or "" when the checker
// requires none.
func (c *DPoPChecker) Nonce() string {
	if c.nonces == nil {
		return ""
	}
	return c.nonces.Current()
}

// DPoPRequest is what a proof is checked against.
type DPoPRequest struct {
	// Proof is the value of the request's single DPoP header.
	Proof string
	// Method is the request's HTTP method; htm must equal it.
	Method string
	// URL is the URL the request was sent to; htu must equal it once both
	// are normalised (RFC 9449 §4.3: query and fragment ignored, scheme and
	// host compared without case, default ports dropped).
	URL string
	// AccessToken, when set, is the token presented with the proof: ath
	// must be its SHA-256 hash.
	AccessToken string
	// BoundTo, when set, is the thumbprint (cnf.jkt) the proof's key must
	// have. A mismatch is ErrDPoPBinding, found before the proof's jti is
	// spent.
	BoundTo string
}

// DPoPProof is a proof the checker accepted.
type DPoPProof struct {
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of the proof's key,
	// base64url: the jkt a token bound to this key carries in cnf.
	Thumbprint string
	Algorithm  string
	JTI        string
	IssuedAt   time.Time
	Nonce      string // "" when the proof had none
}

// dpopHeaderForbidden are header members that would take a key from
// elsewhere than the embedded jwk, or change how the proof is processed.
var dpopHeaderForbidden = map[string]bool{
	"jku": true, "x5u": true, "x5c": true, "crit": true, "b64": true, "cty": true, "enc": true, "zip": true,
}

// Check checks one proof against req: the shape (a compact JWS of at most
// MaxDPoPProofSize), typ dpop+jwt, an allowed alg that fits the embedded
// public jwk, the signature with that jwk, then htm, htu, iat, ath, the
// nonce, the binding, and last the jti (so a proof refused for any other
// reason is not remembered). Every error wraps ErrDPoPProof, ErrDPoPNonce
// or ErrDPoPBinding; messages never contain the proof.
func (c *DPoPChecker) Check(ctx context.Context, req DPoPRequest) (*DPoPProof, error) {
	if len(req.Proof) > MaxDPoPProofSize {
		return nil, fmt.Errorf("proof longer than %d bytes: %w", MaxDPoPProofSize, ErrDPoPProof)
	}
	d1, d2, err := splitCompact(req.Proof)
	if err != nil {
		return nil, fmt.Errorf("proof: %w: %w", ErrDPoPProof, err)
	}
	ph, err := c.header(req.Proof[:d1])
	if err != nil {
		return nil, err
	}
	alg, key, jkt := ph.alg, ph.key, ph.jkt
	sig, err := b64.DecodeString(req.Proof[d2+1:])
	if err != nil {
		return nil, fmt.Errorf("decode signature: %w", ErrDPoPProof)
	}
	if err := alg.verifier.Verify([]byte(req.Proof[:d2]), sig, key); err != nil {
		return nil, fmt.Errorf("signature: %w", ErrDPoPProof)
	}

	payload, err := b64.DecodeString(req.Proof[d1+1 : d2])
	if err != nil {
		return nil, fmt.Errorf("decode payload: %w", ErrDPoPProof)
	}
	cl, err := parseDPoPClaims(payload)
	if err != nil {
		return nil, err
	}
	if cl.htm != req.Method {
		return nil, fmt.Errorf("htm %q is not the request method: %w", safeForMessage(cl.htm), ErrDPoPProof)
	}
	if err := matchHTU(cl.htu, req.URL); err != nil {
		return nil, err
	}
	now := c.now()
	if cl.iat.Before(now.Add(-c.maxAge)) {
		return nil, fmt.Errorf("iat %s older than %s: %w", cl.iat.UTC().Format(time.RFC3339), c.maxAge, ErrDPoPProof)
	}
	if cl.iat.After(now.Add(c.skew)) {
		return nil, fmt.Errorf("iat %s in the future: %w", cl.iat.UTC().Format(time.RFC3339), ErrDPoPProof)
	}
	if req.AccessToken != "" {
		sum := sha256.Sum256([]byte(req.AccessToken))
		if subtle.ConstantTimeCompare([]byte(cl.ath), []byte(b64.EncodeToString(sum[:]))) != 1 {
			return nil, fmt.Errorf("ath is not the access token's hash: %w", ErrDPoPProof)
		}
	}
	if c.nonces != nil && (cl.nonce == "" || !c.nonces.Valid(cl.nonce)) {
		return nil, fmt.Errorf("nonce missing or not current: %w", ErrDPoPNonce)
	}
	if req.BoundTo != "" && subtle.ConstantTimeCompare([]byte(req.BoundTo), []byte(jkt)) != 1 {
		return nil, fmt.Errorf("proof key is not cnf.jkt: %w", ErrDPoPBinding)
	}
	// The jti is remembered per key: one client cannot spend another's jti.
	id := sha256.Sum256([]byte(jkt + " " + cl.jti))
	fresh, err := c.replay.Remember(ctx, b64.EncodeToString(id[:]), cl.iat.Add(c.maxAge))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDPoPReplayCacheFailed, err)
	}
	if !fresh {
		return nil, ErrDPoPReplay
	}
	return &DPoPProof{Thumbprint: jkt, Algorithm: alg.name, JTI: cl.jti, IssuedAt: cl.iat, Nonce: cl.nonce}, nil
}

type dpopHeader struct {
	alg, typ string
	jwk      json.RawMessage
}

// parseDPoPHeader decodes the protected header strictly: an object without
// duplicate members, string alg and typ, an object jwk, none of
// dpopHeaderForbidden.
func parseDPoPHeader(seg string) (dpopHeader, error) {
	var h dpopHeader
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return h, fmt.Errorf("decode header: %w", ErrDPoPProof)
	}
	err = walkObject(raw, func(name string, dec *json.Decoder) error {
		if dpopHeaderForbidden[name] {
			return fmt.Errorf("header %q: %w", name, ErrDPoPProof)
		}
		switch name {
		case "alg", "typ":
			dst := &h.alg
			if name == "typ" {
				dst = &h.typ
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("header %q: %w", name, ErrDPoPProof)
			}
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("header %q is not a string: %w", name, ErrDPoPProof)
			}
			*dst = s
		case "jwk":
			if err := dec.Decode(&h.jwk); err != nil {
				return fmt.Errorf("header jwk: %w", ErrDPoPProof)
			}
		default:
			if err := skipMember(dec); err != nil {
				return fmt.Errorf("header: %w", ErrDPoPProof)
			}
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrDPoPProof) {
			err = fmt.Errorf("header: %w: %w", ErrDPoPProof, err)
		}
		return h, err
	}
	if h.alg == "" || h.typ == "" || h.jwk == nil {
		return h, fmt.Errorf("header lacks alg, typ or jwk: %w", ErrDPoPProof)
	}
	return h, nil
}

// jwkPrivateMembers are the members of a private or symmetric JWK
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). A proof carrying one has
// leaked its key: refused, whatever else it holds.
var jwkPrivateMembers = map[string]bool{
	"d": true, "p": true, "q": true, "dp": true, "dq": true, "qi": true, "oth": true, "k": true,
}

// parseDPoPKey checks the proof's jwk against alg and returns the crypto
// public key and its RFC 7638 thumbprint. Key members must be canonical
// (strict base64url, EC coordinates of the curve's full length, RSA
// integers without leading zero bytes), so the thumbprint computed from
// the members as sent is the one the client computed from its key.
func parseDPoPKey(raw json.RawMessage, alg dpopAlg) (any, string, error) {
	m := map[string]string{}
	err := walkObject(raw, func(name string, dec *json.Decoder) error {
		if jwkPrivateMembers[name] {
			return fmt.Errorf("jwk carries private member %q: %w", name, ErrDPoPProof)
		}
		switch name {
		case "kty", "crv", "x", "y", "n", "e":
			var v any
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("jwk %q: %w", name, ErrDPoPProof)
			}
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("jwk %q is not a string: %w", name, ErrDPoPProof)
			}
			m[name] = s
		default: // alg, use, key_ops, kid, ext: not used
			if err := skipMember(dec); err != nil {
				return fmt.Errorf("jwk: %w", ErrDPoPProof)
			}
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrDPoPProof) {
			err = fmt.Errorf("jwk: %w: %w", ErrDPoPProof, err)
		}
		return nil, "", err
	}
	if m["kty"] != alg.kty {
		return nil, "", fmt.Errorf("jwk kty %q does not fit alg %s: %w", safeForMessage(m["kty"]), alg.name, ErrDPoPProof)
	}
	var key any
	var canon string // RFC 7638 §3.2: required members, sorted, no whitespace
	switch alg.kty {
	case "EC":
		size := (alg.curve.Params().BitSize + 7) / 8
		if m["crv"] != alg.curve.Params().Name {
			return nil, "", fmt.Errorf("jwk crv %q does not fit alg %s: %w", safeForMessage(m["crv"]), alg.name, ErrDPoPProof)
		}
		x, errX := decodeFixed(m["x"], size)
		y, errY := decodeFixed(m["y"], size)
		if errX != nil || errY != nil {
			return nil, "", fmt.Errorf("jwk x or y is not %d bytes of base64url: %w", size, ErrDPoPProof)
		}
		pk := &ecdsa.PublicKey{Curve: alg.curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		if _, err := pk.ECDH(); err != nil { // on the curve, not the point at infinity
			return nil, "", fmt.Errorf("jwk point: %w", ErrDPoPProof)
		}
		key = pk
		canon = `{"crv":"` + m["crv"] + `","kty":"EC","x":"` + m["x"] + `","y":"` + m["y"] + `"}`
	case "OKP":
		if m["crv"] != "Ed25519" {
			return nil, "", fmt.Errorf("jwk crv %q does not fit EdDSA: %w", safeForMessage(m["crv"]), ErrDPoPProof)
		}
		x, err := decodeFixed(m["x"], ed25519.PublicKeySize)
		if err != nil {
			return nil, "", fmt.Errorf("jwk x is not an Ed25519 key: %w", ErrDPoPProof)
		}
		key = ed25519.PublicKey(x)
		canon = `{"crv":"Ed25519","kty":"OKP","x":"` + m["x"] + `"}`
	case "RSA":
		n, errN := decodeMinimal(m["n"])
		e, errE := decodeMinimal(m["e"])
		if errN != nil || errE != nil || len(e) > 4 {
			return nil, "", fmt.Errorf("jwk n or e is not a minimal base64url integer: %w", ErrDPoPProof)
		}
		pk := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if bits := pk.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, "", fmt.Errorf("jwk RSA key of %d bits: %w", bits, ErrDPoPProof)
		}
		if pk.E < 3 || pk.E%2 == 0 || pk.E > math.MaxInt32 {
			return nil, "", fmt.Errorf("jwk RSA exponent: %w", ErrDPoPProof)
		}
		key = pk
		canon = `{"e":"` + m["e"] + `","kty":"RSA","n":"` + m["n"] + `"}`
	}
	sum := sha256.Sum256([]byte(canon))
	return key, b64.EncodeToString(sum[:]), nil
}

// decodeFixed decodes strict base64url of exactly n bytes.
func decodeFixed(s string, n int) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, errors.New("wrong length")
	}
	return b, nil
}

// decodeMinimal decodes a strict base64url big-endian integer that has no
// leading zero byte (RFC 7518 §6.3.1: the minimum number of octets).
func decodeMinimal(s string) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil || len(b) == 0 || b[0] == 0 {
		return nil, errors.New("not minimal")
	}
	return b, nil
}

type dpopClaims struct {
	jti, htm, htu, ath, nonce string
	iat                       time.Time
}

// parseDPoPClaims decodes the payload strictly: an object without
// duplicate members; jti, htm and htu non-empty strings, iat a number;
// ath and nonce strings when present.
func parseDPoPClaims(payload []byte) (*dpopClaims, error) {
	c := &dpopClaims{}
	var hasIat bool
	err := walkObject(payload, func(name string, dec *json.Decoder) error {
		var dst *string
		switch name {
		case "jti":
			dst = &c.jti
		case "htm":
			dst = &c.htm
		case "htu":
			dst = &c.htu
		case "ath":
			dst = &c.ath
		case "nonce":
			dst = &c.nonce
		case "iat":
			var v any
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("claim iat: %w", ErrDPoPProof)
			}
			n, ok := v.(json.Number)
			if !ok {
				return fmt.Errorf("claim iat is not a number: %w", ErrDPoPProof)
			}
			var err error
			if c.iat, err = timeValue(member{name: []byte("iat"), value: []byte(n.String())}); err != nil {
				return fmt.Errorf("claim iat: %w: %w", ErrDPoPProof, err)
			}
			hasIat = true
			return nil
		default:
			if err := skipMember(dec); err != nil {
				return fmt.Errorf("claims: %w", ErrDPoPProof)
			}
			return nil
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("claim %q: %w", name, ErrDPoPProof)
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("claim %q is not a string: %w", name, ErrDPoPProof)
		}
		*dst = s
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrDPoPProof) {
			err = fmt.Errorf("claims: %w: %w", ErrDPoPProof, err)
		}
		return nil, err
	}
	switch {
	case c.jti == "" || len(c.jti) > maxJTILength:
		return nil, fmt.Errorf("jti missing or longer than %d bytes: %w", maxJTILength, ErrDPoPProof)
	case c.htm == "" || c.htu == "" || !hasIat:
		return nil, fmt.Errorf("htm, htu or iat missing: %w", ErrDPoPProof)
	}
	return c, nil
}

// matchHTU compares htu with the request URL after normalizeHTU. Equal
// strings need no parsing when the URL is already in normal form (what
// VerifyRequest builds, and what clients send).
func matchHTU(htu, reqURL string) error {
	want, err := normalizeHTU(reqURL)
	if err != nil {
		return fmt.Errorf("request URL: %w: %w", err, ErrDPoPProof)
	}
	if htu == want {
		return nil
	}
	got, err := normalizeHTU(htu)
	if err != nil {
		return fmt.Errorf("htu: %w: %w", err, ErrDPoPProof)
	}
	if got != want {
		return fmt.Errorf("htu is not the request URL: %w", ErrDPoPProof)
	}
	return nil
}

// normalizeHTU reduces an http(s) URL to what RFC 9449 §4.3 compares:
// scheme and host in lower case, the default port dropped, the path with
// percent-encoding normalised and dot segments removed (RFC 3986 §6.2.2,
// §6.2.3), an empty path as "/"; query and fragment dropped.
func normalizeHTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" || u.Host == "" || u.Opaque != "" || u.User != nil {
		return "", errors.New("not an absolute http(s) URL without user info")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(scheme == "https" && port == "443" || scheme == "http" && port == "80") {
		host += ":" + port
	}
	path := removeDotSegments(normalizePercent(u.EscapedPath()))
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent upper-cases percent-encoding hex digits and decodes
// those that encode unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			b.WriteByte(p[i])
			continue
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteString(strings.ToUpper(p[i : i+3]))
		}
		i += 2
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// removeDotSegments is RFC 3986 §5.2.4 on an absolute path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// walkObject calls fn for each member of the JSON object in data, in
// order, with a decoder over that member's value alone. The object is
// split by topLevelMembers, the one strict scanner tokens are read with
// too: duplicate member names, trailing data and non-objects are
// ErrMalformed.
func walkObject(data []byte, fn func(name string, dec *json.Decoder) error) error {
	var buf [16]member
	ms, err := topLevelMembers(data, buf[:0])
	if err != nil {
		return err
	}
	for _, m := range ms {
		dec := json.NewDecoder(bytes.NewReader(m.value))
		dec.UseNumber()
		if err := fn(string(m.name), dec); err != nil {
			return err
		}
	}
	return nil
}

// skipMember consumes a member's value that walkObject's caller ignores.
func skipMember(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("bad JSON: %w", ErrMalformed)
	}
	return nil
}
