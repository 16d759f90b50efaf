package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// metadata is the part of RFC 8414 / OpenID discovery the verifier reads.
// revocation_feed is Signet's own member (see RevocationFeed).
type metadata struct {
	Issuer         string `json:"issuer"`
	JWKSURI        string `json:"jwks_uri"`
	RevocationFeed string `json:"revocation_feed"`
}

// discover reads the issuer's metadata, trying the RFC 8414 location first
// and the OpenID one when the first does not answer 200.
func (v *Verifier) discover(ctx context.Context) (*metadata, error) {
	base := strings.TrimSuffix(v.issuer, "/")
	var errs []error
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		src := &source{name: "metadata", url: base + path, limit: maxJWKSBytes}
		body, _, _, err := v.get(ctx, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var md metadata
		if err := json.Unmarshal(body, &md); err != nil {
			return nil, fmt.Errorf("jwks: decode metadata %s: %w", src.url, err)
		}
		if md.Issuer != v.issuer {
			return nil, fmt.Errorf("jwks: metadata %s names issuer %q, want %q", src.url, md.Issuer, v.issuer)
		}
		if md.JWKSURI == "" {
			return nil, fmt.Errorf("jwks: metadata %s has no jwks_uri", src.url)
		}
		return &md, nil
	}
	return nil, fmt.Errorf("jwks: discovery: %w", errors.Join(errs...))
}

// checkURL allows https anywhere and http only on loopback hosts,
// or anywhere when plainHTTP is set.
func checkURL(raw string, plainHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && (plainHTTP || isLoopback(u.Hostname())):
		return nil
	}
	return fmt.Errorf("%q is not https (plain http is allowed on loopback only)", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameHostRedirects refuses redirects that leave the original host or
// https, so a compromised path cannot point the verifier at another key
// set.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		return fmt.Errorf("redirect to another host or scheme (%s) refused", req.URL.Redacted())
	}
	return nil
}

// source is one fetched document (key set or revocation feed): its URL,
// the validator for conditional requests and the counters Stats reports.
type source struct {
	name  string
	url   string
	limit int64

	mu    sync.Mutex
	etag  string
	next  time.Time // when the refresher fetches next
	fails int       // consecutive failures, for the retry backoff
	stats SourceStats
}

// SourceStats describes the fetches of one document.
type SourceStats struct {
	URL         string
	Requests    uint64    // requests sent
	Updates     uint64    // 200 responses whose content was accepted
	NotModified uint64    // 304 responses to conditional requests
	Failures    uint64    // transport errors, bad statuses, rejected content
	LastAttempt time.Time // start of the latest request
	LastSuccess time.Time // start of the latest request answered 200 (accepted) or 304
	NextRefresh time.Time // when the background refresher fetches next
	LastError   error     // nil once a fetch succeeds
}

// cachePolicy is what a response said about its freshness.
type cachePolicy struct {
	maxAge time.Duration
	ok     bool // a max-age (or no-cache/no-store, meaning 0) was given
}

// get performs one (conditional) GET of src and returns the body (nil on
// 304), the caching headers and the ETag. It does not touch src's
// counters; record does.
func (v *Verifier) get(ctx context.Context, src *source) ([]byte, cachePolicy, string, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url, nil)
	if err != nil {
		return nil, cachePolicy{}, "", fmt.Errorf("get %s: %w", src.url, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	src.mu.Lock()
	if src.etag != "" {
		req.Header.Set("If-None-Match", src.etag)
	}
	src.mu.Unlock()
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, cachePolicy{}, "", fmt.Errorf("get %s: %w", src.url, err)
	}
	defer resp.Body.Close()
	cp := parseCacheControl(resp.Header)
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, cp, "", nil
	case http.StatusOK:
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, cp, "", fmt.Errorf("get %s: status %d", src.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, src.limit+1))
	if err != nil {
		return nil, cp, "", fmt.Errorf("read %s: %w", src.url, err)
	}
	if int64(len(body)) > src.limit {
		return nil, cp, "", fmt.Errorf("get %s: body larger than %d bytes", src.url, src.limit)
	}
	return body, cp, resp.Header.Get("ETag"), nil
}

// parseCacheControl reads max-age (less Age), treating no-cache and
// no-store as 0.
func parseCacheControl(h http.Header) cachePolicy {
	var cp cachePolicy
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-cache" || d == "no-store":
			return cachePolicy{ok: true}
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64)
			if err == nil && n >= 0 {
				cp = cachePolicy{maxAge: time.Duration(min(n, int64(maxRefresh/time.Second))) * time.Second, ok: true}
			}
		}
	}
	if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); cp.ok && err == nil && age > 0 {
		cp.maxAge = max(0, cp.maxAge-time.Duration(age)*time.Second)
	}
	return cp
}

// record updates src after a fetch that started at start. etag is stored
// only with accepted content, so a 304 never vouches for a body we
// rejected.
func (v *Verifier) record(src *source, start time.Time, cp cachePolicy, status fetchStatus, etag string, err error) {
	src.mu.Lock()
	defer src.mu.Unlock()
	st := &src.stats
	st.Requests++
	st.LastAttempt = start
	if err != nil {
		st.Failures++
		st.LastError = err
		src.fails++
		// Retry after the min interval, doubling per consecutive failure up
		// to the default refresh period.
		backoff := v.minInt << min(src.fails-1, 8)
		src.next = start.Add(min(backoff, max(defaultRefresh, v.minInt)))
	} else {
		if status == fetchUpdated {
			st.Updates++
			src.etag = etag
		} else {
			st.NotModified++
		}
		st.LastError = nil
		st.LastSuccess = start
		src.fails = 0
		d := defaultRefresh
		if cp.ok {
			d = cp.maxAge
		}
		src.next = start.Add(min(max(d, v.minInt), maxRefresh))
	}
	st.NextRefresh = src.next
}

type fetchStatus int

const (
	fetchFailed fetchStatus = iota
	fetchUpdated
	fetchNotModified
)

// refreshKeys fetches the key set once and swaps in the new snapshot if it
// has at least one usable key. On any failure the last good set stays.
func (v *Verifier) refreshKeys(ctx context.Context) error {
	start := v.now()
	done := make(chan struct{})
	v.mu.Lock()
	v.lastFetch = start
	v.inflight = done
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.inflight = nil
		v.mu.Unlock()
		close(done)
	}()

	body, cp, etag, status, err := v.fetch(ctx, v.jwksSrc)
	if err == nil && status == fetchUpdated {
		var snap *keySnapshot
		if snap, err = v.parseKeySet(ctx, body); err == nil {
			v.keys.Store(snap)
		}
	}
	v.record(v.jwksSrc, start, cp, status, etag, err)
	return err
}

// refreshDenylist is refreshKeys for the revocation feed. An empty feed is
// valid; a failed fetch keeps the last good lists.
func (v *Verifier) refreshDenylist(ctx context.Context) error {
	start := v.now()
	body, cp, etag, status, err := v.fetch(ctx, v.feedSrc)
	if err == nil && status == fetchUpdated {
		var d *denySnapshot
		if d, err = parseDenylist(body, v.subjectKey); err == nil {
			v.deny.Store(d)
		}
	}
	v.record(v.feedSrc, start, cp, status, etag, err)
	return err
}

func (v *Verifier) fetch(ctx context.Context, src *source) (body []byte, cp cachePolicy, etag string, status fetchStatus, err error) {
	body, cp, etag, err = v.get(ctx, src)
	if err != nil {
		return nil, cp, "", fetchFailed, err
	}
	if body == nil {
		return nil, cp, "", fetchNotModified, nil
	}
	return body, cp, etag, fetchUpdated, nil
}

// run is the background refresher. All fetches after NewVerifier happen
// here, one at a time, which is what makes "one fetch in flight" hold.
func (v *Verifier) run(ctx context.Context) {
	defer close(v.stopped)
	for {
		next := v.jwksSrc.nextRefresh()
		if v.feedSrc != nil {
			next = minTime(next, v.feedSrc.nextRefresh())
		}
		select {
		case <-ctx.Done():
			v.recordStop(ctx, context.Cause(ctx))
			return
		case <-v.kick:
			v.logFailure(ctx, v.jwksSrc, v.refreshKeys(ctx))
			v.mu.Lock()
			ch := v.pending
			v.pending = nil
			v.mu.Unlock()
			if ch != nil {
				close(ch)
			}
		case <-v.after(next.Sub(v.now())):
			now := v.now()
			if !now.Before(v.jwksSrc.nextRefresh()) {
				v.logFailure(ctx, v.jwksSrc, v.refreshKeys(ctx))
			}
			if v.feedSrc != nil && !now.Before(v.feedSrc.nextRefresh()) {
				v.logFailure(ctx, v.feedSrc, v.refreshDenylist(ctx))
			}
			if v.refreshed != nil {
				v.refreshed()
			}
		}
	}
}

// logFailure logs a failed background refresh; the refresher is where such
// errors are handled (Verify carries on with the last good data).
func (v *Verifier) logFailure(ctx context.Context, src *source, err error) {
	if err == nil {
		return
	}
	v.log.LogAttrs(ctx, slog.LevelWarn, "refresh failed, keeping last good copy",
		slog.String("source", src.name), slog.String("url", src.url), slog.Any("err", err))
}

func (v *Verifier) recordStop(ctx context.Context, cause error) {
	err := fmt.Errorf("jwks: background refresher stopped: %w", cause)
	v.stopCause.Store(&err)
	v.log.LogAttrs(ctx, slog.LevelInfo, "jwks refresher stopped", slog.Any("reason", cause))
}

func (s *source) nextRefresh() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Stats is a snapshot of the verifier's caches and fetches.
type Stats struct {
	Keys           int         // usable keys in the current set
	JWKS           SourceStats // key set fetches
	Denylist       SourceStats // revocation feed fetches; zero when off
	RevokedJTIs    int
	SubjectCutoffs int // plain and hashed
	// SubjectKeyMissing: the feed lists hashed subject cutoffs, and
	// without WithDenylistSubjectKey this verifier cannot apply them.
	SubjectKeyMissing bool
}

// Stats reports the current key count and fetch counters.
func (v *Verifier) Stats() Stats {
	var s Stats
	s.Keys = v.keys.Load().count
	if v.jwksSrc != nil {
		s.JWKS = v.jwksSrc.snapshot()
	}
	if v.feedSrc != nil {
		s.Denylist = v.feedSrc.snapshot()
		if d := v.deny.Load(); d != nil {
			s.RevokedJTIs, s.SubjectCutoffs, s.SubjectKeyMissing = len(d.jtis), len(d.cutoffs)+len(d.hashed), d.keyMissing
		}
	}
	return s
}

func (s *source) snapshot() SourceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.URL = s.url
	return st
}

// Healthy returns nil while the latest key set fetch (and feed fetch, with
// the denylist on) succeeded and the refresher runs. Otherwise the error
// says what failed; Verify still works with the last good data, so a
// service may report itself degraded rather than down.
func (v *Verifier) Healthy() error {
	var errs []error
	if p := v.stopCause.Load(); p != nil {
		errs = append(errs, *p)
	}
	if exp := v.keys.Load().expires; !exp.IsZero() && !v.now().Before(exp) {
		errs = append(errs, fmt.Errorf("signed key set expired at %s: %w", exp.UTC().Format(time.RFC3339), ErrSetExpired))
	}
	for _, src := range []*source{v.jwksSrc, v.feedSrc} {
		if src == nil {
			continue
		}
		st := src.snapshot()
		if st.LastError != nil {
			errs = append(errs, fmt.Errorf("jwks: %s refresh failing since %s (last success %s): %w",
				src.name, st.LastAttempt.UTC().Format(time.RFC3339), st.LastSuccess.UTC().Format(time.RFC3339), st.LastError))
		}
	}
	return errors.Join(errs...)
}

// verifyKey is a published key ready for use: the algorithm pinned by the
// JWKS, the parsed crypto key and jwx's verifier for that algorithm, all
// built once per fetch rather than once per token.
type verifyKey struct {
	kid    string
	alg    jwa.SignatureAlgorithm
	raw    any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	verify sigCheck
}

// keySnapshot is an immutable key set. A kid may map to several keys with
// different algorithms; the token's alg picks one, and must match.
type keySnapshot struct {
	byKID map[string][]*verifyKey
	count int
	// expires is the exp of a signed key set (NewSignedSetVerifier); zero
	// for a fetched JWKS.
	expires time.Time
}

func (s *keySnapshot) find(kid string, alg jwa.SignatureAlgorithm) (*verifyKey, error) {
	ks := s.byKID[kid]
	if len(ks) == 0 {
		return nil, fmt.Errorf("kid %q: %w", kid, ErrUnknownKey)
	}
	for _, k := range ks {
		if k.alg == alg {
			return k, nil
		}
	}
	return nil, fmt.Errorf("kid %q is pinned to %s, token says %s: %w", kid, ks[0].alg, alg, ErrAlgorithmMismatch)
}

// parseKeySet builds a snapshot from a JWKS document. Keys are parsed one
// by one so a single bad entry is skipped (and logged) instead of losing
// the whole set; a set without any usable key is an error, so it never
// replaces a good one.
func (v *Verifier) parseKeySet(ctx context.Context, body []byte) (*keySnapshot, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	snap := &keySnapshot{byKID: make(map[string][]*verifyKey, len(doc.Keys))}
	for i, raw := range doc.Keys {
		k, err := v.acceptKey(raw)
		if err != nil {
			v.log.LogAttrs(ctx, slog.LevelWarn, "jwks key skipped",
				slog.Int("index", i), slog.String("reason", err.Error()))
			continue
		}
		dup := false
		for _, o := range snap.byKID[k.kid] {
			dup = dup || o.alg == k.alg
		}
		if dup {
			v.log.LogAttrs(ctx, slog.LevelWarn, "jwks key skipped",
				slog.Int("index", i), slog.String("kid", k.kid), slog.String("reason", "duplicate kid and alg"))
			continue
		}
		snap.byKID[k.kid] = append(snap.byKID[k.kid], k)
		snap.count++
	}
	if snap.count == 0 {
		return nil, fmt.Errorf("key set has no usable key (%d entries)", len(doc.Keys))
	}
	return snap, nil
}

// curves pins each ECDSA algorithm to its curve, so a key cannot be used
// with the wrong curve's algorithm.
var curves = map[jwa.SignatureAlgorithm]elliptic.Curve{
	jwa.ES256: elliptic.P256(), jwa.ES384: elliptic.P384(), jwa.ES512: elliptic.P521(),
}

// acceptKey turns one JWKS entry into a verifyKey, or says why not:
// private or symmetric material, no use=sig, no alg, an alg we do not
// allow or that does not fit the key, RSA under 2048 bits, an EC key off
// its curve.
func (v *Verifier) acceptKey(raw json.RawMessage) (*verifyKey, error) {
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	kid := key.KeyID()
	if !validKID(kid) {
		return nil, errors.New("missing or invalid kid")
	}
	switch key.(type) {
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
		return nil, fmt.Errorf("kid %s: private key material", kid)
	case jwk.SymmetricKey:
		return nil, fmt.Errorf("kid %s: symmetric key", kid)
	}
	if key.KeyUsage() != "sig" {
		return nil, fmt.Errorf("kid %s: use is %q, not sig", kid, key.KeyUsage())
	}
	if ops := key.KeyOps(); len(ops) > 0 && !containsOp(ops, jwk.KeyOpVerify) {
		return nil, fmt.Errorf("kid %s: key_ops lacks verify", kid)
	}
	algName := key.Algorithm().String()
	alg, ok := v.allowed[algName]
	if !ok {
		return nil, fmt.Errorf("kid %s: alg %q missing or not allowed", kid, algName)
	}
	var pub any
	if err := key.Raw(&pub); err != nil {
		return nil, fmt.Errorf("kid %s: raw key: %w", kid, err)
	}
	switch pk := pub.(type) {
	case *rsa.PublicKey:
		if !strings.HasPrefix(algName, "RS") && !strings.HasPrefix(algName, "PS") {
			return nil, fmt.Errorf("kid %s: RSA key with alg %s", kid, algName)
		}
		if pk.N.BitLen() < 2048 {
			return nil, fmt.Errorf("kid %s: RSA key of %d bits", kid, pk.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if want := curves[alg]; want == nil || pk.Curve != want {
			return nil, fmt.Errorf("kid %s: EC curve %s does not fit alg %s", kid, pk.Curve.Params().Name, algName)
		}
		if _, err := pk.ECDH(); err != nil {
			return nil, fmt.Errorf("kid %s: EC point: %w", kid, err)
		}
	case ed25519.PublicKey:
		if alg != jwa.EdDSA || len(pk) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("kid %s: Ed25519 key with alg %s", kid, algName)
		}
	default:
		return nil, fmt.Errorf("kid %s: unsupported key type %T", kid, pub)
	}
	check, err := newSigCheck(alg, pub)
	if err != nil {
		return nil, fmt.Errorf("kid %s: %w", kid, err)
	}
	return &verifyKey{kid: kid, alg: alg, raw: pub, verify: check}, nil
}

func containsOp(ops jwk.KeyOperationList, op jwk.KeyOperation) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}
