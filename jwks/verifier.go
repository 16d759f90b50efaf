package jwks

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// Limits and defaults. They are constants rather than options because a
// service has no good reason to loosen them.
const (
	// DefaultLeeway absorbs clock skew between the issuer and the service
	// for exp, nbf and iat. 30 s covers NTP-synchronised fleets with room to
	// spare; WithLeeway accepts at most MaxLeeway: more
	// would keep expired tokens alive for no clock a fleet really has.
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = 60 * time.Second

	// DefaultMinRefreshInterval bounds how often an unknown kid may make the
	// verifier fetch the JWKS (and is the floor for max-age driven refreshes
	// and the first retry after a failure). At 10 s a flood of random kids
	// costs the issuer at most 6 requests a minute per verifier, while a key
	// that appeared without pre-publication is picked up within seconds.
	DefaultMinRefreshInterval = 10 * time.Second

	// defaultRefresh applies when the server sends no max-age, and
	// maxRefresh caps a large max-age, so a removed key stops verifying
	// within an hour whatever the headers say.
	defaultRefresh = 5 * time.Minute
	maxRefresh     = time.Hour

	// MaxTokenSize is the longest token Verify parses, so a huge header
	// cannot cost memory or time before anything is checked.
	MaxTokenSize = 16 << 10

	maxKIDLength  = 128
	maxJWKSBytes  = 1 << 20
	maxFeedBytes  = 4 << 20
	fetchTimeout  = 10 * time.Second
	defaultFeedAt = "/oauth2/revocations"
)

// DefaultAlgorithms are the algorithms a Verifier accepts unless
// WithAllowedAlgorithms says otherwise. HMAC and none are never accepted.
func DefaultAlgorithms() []string {
	return []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"}
}

// supportedAlgorithms are the asymmetric algorithms WithAllowedAlgorithms
// may name.
var supportedAlgorithms = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256, "RS384": jwa.RS384, "RS512": jwa.RS512,
	"PS256": jwa.PS256, "PS384": jwa.PS384, "PS512": jwa.PS512,
	"ES256": jwa.ES256, "ES384": jwa.ES384, "ES512": jwa.ES512,
	"EdDSA": jwa.EdDSA,
}

// Option configures a Verifier.
type Option func(*config)

type config struct {
	audiences   []string
	leeway      time.Duration
	algs        []string
	typ         string
	client      *http.Client
	minInterval time.Duration
	denylist    bool
	subjectKey  []byte
	logger      *slog.Logger
	now         func() time.Time
	jwksURL     string
	feedURL     string
	plainHTTP   bool
	lifetime    context.Context // nil: the refresher runs until Close
	dpop        *DPoPChecker    // WithDPoP; nil: Bearer only

	// Test hooks: after replaces time.After in the refresher, refreshed is
	// called after each scheduled (not on-demand) refresh.
	after     func(time.Duration) <-chan time.Time
	refreshed func()
}

// WithAudience sets the audiences a token must name (any one of them is
// enough). It is required: RFC 9068 §4 makes the aud check mandatory.
func WithAudience(aud ...string) Option {
	return func(c *config) { c.audiences = append(c.audiences, aud...) }
}

// WithLeeway sets the clock-skew allowance for exp, nbf and iat
// (default DefaultLeeway, at most MaxLeeway, 0 allowed).
func WithLeeway(d time.Duration) Option { return func(c *config) { c.leeway = d } }

// WithAllowedAlgorithms replaces DefaultAlgorithms. Only asymmetric JWS
// algorithms are accepted; naming none or HS* makes NewVerifier fail.
func WithAllowedAlgorithms(algs ...string) Option {
	return func(c *config) { c.algs = append([]string(nil), algs...) }
}

// WithRequiredType sets the header typ a token must carry (default
// "at+jwt", RFC 9068 §2.1). The comparison ignores case and an
// "application/" prefix.
func WithRequiredType(t string) Option { return func(c *config) { c.typ = t } }

// WithHTTPClient sets the client for metadata, JWKS and revocation feed
// requests. The verifier uses a copy that refuses redirects to other hosts.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.client = hc } }

// WithMinRefreshInterval sets DefaultMinRefreshInterval's replacement.
func WithMinRefreshInterval(d time.Duration) Option {
	return func(c *config) { c.minInterval = d }
}

// WithDenylist turns the revocation feed on: revoked jtis and subject
// cutoffs are then enforced, and NewVerifier fails if the first fetch of the
// feed fails. RevocationFeed documents the feed.
func WithDenylist(on bool) Option { return func(c *config) { c.denylist = on } }

// WithDenylistSubjectKey sets the key of the feed's subject hashes
// (RevocationFeed, subject_cutoffs_hmac), so that the verifier applies
// the logouts of users: `signet keys feed-key` prints Signet's. Without
// it, a feed that hashes its subjects gives this verifier revoked jtis
// only, and Stats().SubjectKeyMissing is true.
func WithDenylistSubjectKey(key []byte) Option {
	return func(c *config) { c.subjectKey = append([]byte(nil), key...) }
}

// WithRevocationFeedURL sets the feed URL when the metadata has no
// revocation_feed or discovery is skipped. It implies nothing about
// WithDenylist.
func WithRevocationFeedURL(u string) Option { return func(c *config) { c.feedURL = u } }

// WithLogger sets the logger for refresh failures and skipped keys.
// Nil discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithJWKSURL skips discovery and fetches the key set from u.
func WithJWKSURL(u string) Option { return func(c *config) { c.jwksURL = u } }

// WithContext ties the background refresher to ctx: it stops when ctx is
// done (or at Close, whichever comes first), and Healthy then reports it
// stopped. Without this option the refresher runs until Close, whatever
// happens to the context given to NewVerifier.
func WithContext(ctx context.Context) Option { return func(c *config) { c.lifetime = ctx } }

// WithInsecureHTTP allows plain http URLs on any host, for development
// setups such as a compose network. Without it, http is accepted only on
// loopback hosts: anyone on the path of a plain http JWKS
// fetch can substitute keys.
func WithInsecureHTTP() Option { return func(c *config) { c.plainHTTP = true } }

// Verifier verifies access tokens of one issuer against its published keys.
// It is safe for concurrent use. Keys and the denylist are immutable
// snapshots swapped atomically, so Verify takes no lock on the hot path.
type Verifier struct {
	issuer    string
	audiences []string
	leeway    time.Duration
	allowed   map[string]jwa.SignatureAlgorithm
	typ       string
	client    *http.Client
	minInt    time.Duration
	log       *slog.Logger
	now       func() time.Time
	after     func(time.Duration) <-chan time.Time
	refreshed func()
	// subjectKey keys the feed's subject hashes (WithDenylistSubjectKey).
	subjectKey []byte

	keys atomic.Pointer[keySnapshot]
	deny atomic.Pointer[denySnapshot] // nil when the denylist is off

	jwksSrc *source
	feedSrc *source      // nil when the denylist is off
	signed  *signedState // set by NewSignedSetVerifier: no jwksSrc, no refresher

	mu        sync.Mutex
	lastFetch time.Time     // start of the latest JWKS fetch of any kind
	pending   chan struct{} // closed when the requested on-demand fetch is done
	inflight  chan struct{} // closed when the JWKS fetch running now is done
	kick      chan struct{} // asks the refresher for an on-demand fetch
	stop      context.CancelCauseFunc
	stopped   chan struct{} // closed when the refresher has exited
	stopCause atomic.Pointer[error]

	dpop *DPoPChecker // nil: DPoP-bound tokens are refused

	plainHTTP bool // WithInsecureHTTP, for the URLs of a ProtectedResource
}

// NewVerifier discovers the issuer's metadata (unless WithJWKSURL is
// given), fetches the key set (and the revocation feed with WithDenylist)
// and starts a background refresher.
//
// ctx bounds only those first fetches: a start-up deadline such as
// context.WithTimeout(ctx, 10*time.Second) is what it is for. The refresher
// runs until Close (or until the context of WithContext is done); after
// that Verify keeps using the last keys but nothing is refreshed any more.
//
// Discovery reads issuer + "/.well-known/oauth-authorization-server"
// (RFC 8414), falling back to "/.well-known/openid-configuration", and
// requires the document's issuer to equal the argument byte for byte.
// URLs must be https, except on loopback hosts (for tests) or with
// WithInsecureHTTP.
func NewVerifier(ctx context.Context, issuer string, opts ...Option) (*Verifier, error) {
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

	jwksURL, feedURL := c.jwksURL, c.feedURL
	if jwksURL == "" {
		md, err := v.discover(ctx)
		if err != nil {
			return nil, err
		}
		jwksURL = md.JWKSURI
		if feedURL == "" {
			feedURL = md.RevocationFeed
		}
	}
	if feedURL == "" {
		feedURL = strings.TrimSuffix(issuer, "/") + defaultFeedAt
	}
	if err := checkURL(jwksURL, c.plainHTTP); err != nil {
		return nil, fmt.Errorf("jwks: jwks_uri: %w", err)
	}
	v.jwksSrc = &source{name: "jwks", url: jwksURL, limit: maxJWKSBytes}
	if c.denylist {
		if err := checkURL(feedURL, c.plainHTTP); err != nil {
			return nil, fmt.Errorf("jwks: revocation feed: %w", err)
		}
		v.feedSrc = &source{name: "revocation feed", url: feedURL, limit: maxFeedBytes}
	}

	v.mu.Lock()
	v.lastFetch = v.now()
	v.mu.Unlock()
	if err := v.refreshKeys(ctx); err != nil {
		return nil, fmt.Errorf("jwks: initial key set fetch: %w", err)
	}
	if v.feedSrc != nil {
		if err := v.refreshDenylist(ctx); err != nil {
			return nil, fmt.Errorf("jwks: initial revocation feed fetch: %w", err)
		}
	}
	lifetime := c.lifetime
	if lifetime == nil {
		// Keep ctx's values (for logging), not its deadline.
		lifetime = context.WithoutCancel(ctx)
	}
	runCtx, stop := context.WithCancelCause(lifetime)
	v.stop = stop
	go v.run(runCtx)
	return v, nil
}

func newVerifier(issuer string, c config) (*Verifier, error) {
	var errs []error
	if issuer == "" {
		errs = append(errs, errors.New("issuer is empty"))
	} else if err := checkURL(issuer, c.plainHTTP); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	if len(c.audiences) == 0 {
		errs = append(errs, errors.New("no audience: WithAudience is required"))
	}
	if c.leeway < 0 || c.leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("leeway %s outside [0, %s]", c.leeway, MaxLeeway))
	}
	if c.minInterval <= 0 {
		errs = append(errs, fmt.Errorf("min refresh interval %s is not positive", c.minInterval))
	}
	if c.typ == "" {
		errs = append(errs, errors.New("required type is empty"))
	}
	allowed := make(map[string]jwa.SignatureAlgorithm, len(c.algs))
	for _, a := range c.algs {
		sa, ok := supportedAlgorithms[a]
		if !ok {
			errs = append(errs, fmt.Errorf("algorithm %q is not an allowed asymmetric algorithm", a))
			continue
		}
		allowed[a] = sa
	}
	if len(allowed) == 0 {
		errs = append(errs, errors.New("no allowed algorithms"))
	}
	if c.client == nil || c.now == nil {
		errs = append(errs, errors.New("nil http client or clock"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("jwks: new verifier: %w", err)
	}

	log := c.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := *c.client
	hc.CheckRedirect = sameHostRedirects
	return &Verifier{
		issuer:     issuer,
		audiences:  c.audiences,
		leeway:     c.leeway,
		allowed:    allowed,
		typ:        normalizeType(c.typ),
		client:     &hc,
		minInt:     c.minInterval,
		log:        log,
		now:        c.now,
		after:      c.after,
		refreshed:  c.refreshed,
		subjectKey: c.subjectKey,
		kick:       make(chan struct{}, 1),
		stopped:    make(chan struct{}),
		dpop:       c.dpop,
		plainHTTP:  c.plainHTTP,
	}, nil
}

// errClosed is why the refresher stops at Close.
var errClosed = errors.New("verifier closed")

// Close stops the background refresher (aborting a fetch in flight) and
// waits for it to exit. Verify keeps working with the last keys. Close is
// idempotent and returns nil.
func (v *Verifier) Close() error {
	v.stop(errClosed)
	<-v.stopped
	return nil
}

// header holds the protected header members Verify looks at.
type header struct {
	alg, kid, typ string
	hasTyp        bool
}

// forbiddenHeaders would make a verifier take a key from the token (jwk,
// jku, x5u, x5c), or change how the token must be processed (crit, b64,
// cty, enc, zip). We understand none of that, so their presence rejects.
var forbiddenHeaders = map[string]bool{
	"jwk": true, "jku": true, "x5u": true, "x5c": true,
	"crit": true, "b64": true, "cty": true, "enc": true, "zip": true,
}

// verifyToken checks token and returns its claims. The order is size, shape,
// header allowlist, key lookup (refetching once on an unknown kid),
// signature, then claims and the denylist, so no claim of an unsigned
// token is ever looked at. ctx bounds the wait for a
// refetch. The returned error wraps one of the Err* sentinels.
func (v *Verifier) verifyToken(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("token longer than %d bytes: %w", MaxTokenSize, ErrMalformed)
	}
	d1, d2, err := splitCompact(token)
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(token[:d1])
	if err != nil {
		return nil, err
	}
	alg, ok := v.allowed[h.alg]
	if !ok {
		return nil, fmt.Errorf("alg %q: %w", safeForMessage(h.alg), ErrUnsupportedAlgorithm)
	}
	if !h.hasTyp || normalizeType(h.typ) != v.typ {
		return nil, fmt.Errorf("typ %q: %w", safeForMessage(h.typ), ErrType)
	}
	if h.kid == "" {
		return nil, fmt.Errorf("no kid in header: %w", ErrUnknownKey)
	}
	if !validKID(h.kid) {
		return nil, fmt.Errorf("kid fails sanity check: %w", ErrMalformed)
	}
	key, err := v.lookup(ctx, h.kid, alg)
	if err != nil {
		return nil, err
	}

	sig, err := b64.DecodeString(token[d2+1:])
	if err != nil {
		return nil, fmt.Errorf("decode signature: %w", ErrMalformed)
	}
	if !key.verify([]byte(token[:d2]), sig) {
		return nil, fmt.Errorf("kid %q: %w", h.kid, ErrInvalidSignature)
	}

	payload, err := b64.DecodeString(token[d1+1 : d2])
	if err != nil {
		return nil, fmt.Errorf("decode payload: %w", ErrMalformed)
	}
	cl, present, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(cl, present); err != nil {
		return nil, err
	}
	if d := v.deny.Load(); d != nil {
		if err := d.check(cl); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// b64 is strict: no padding, no standard alphabet, no stray trailing bits.
// splitCompact has already rejected the CR/LF the decoder would skip.
var b64 = base64.RawURLEncoding.Strict()

// splitCompact returns the positions of the two dots of a compact JWS. One
// pass checks the alphabet and counts dots without allocating.
func splitCompact(token string) (d1, d2 int, err error) {
	d1, d2 = -1, -1
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '.':
			switch {
			case d1 < 0:
				d1 = i
			case d2 < 0:
				d2 = i
			default:
				return 0, 0, fmt.Errorf("more than 3 segments: %w", ErrMalformed)
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return 0, 0, fmt.Errorf("byte outside base64url at offset %d: %w", i, ErrMalformed)
		}
	}
	if d2 < 0 {
		return 0, 0, fmt.Errorf("not 3 segments: %w", ErrMalformed)
	}
	if d1 == 0 || d2 == d1+1 {
		return 0, 0, fmt.Errorf("empty header or payload: %w", ErrMalformed)
	}
	return d1, d2, nil
}

// parseHeader decodes the protected header strictly: an object, no
// duplicate members, string-typed alg/kid/typ, none of forbiddenHeaders.
func parseHeader(seg string) (header, error) {
	var h header
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return h, fmt.Errorf("decode header: %w", ErrMalformed)
	}
	var buf [8]member
	members, err := topLevelMembers(raw, buf[:0])
	if err != nil {
		return h, err
	}
	var hasAlg bool
	for _, m := range members {
		if forbiddenHeaders[string(m.name)] {
			return h, fmt.Errorf("header %q: %w", m.name, ErrForbiddenHeader)
		}
		var dst *string
		switch string(m.name) {
		case "alg":
			dst, hasAlg = &h.alg, true
		case "kid":
			dst = &h.kid
		case "typ":
			dst, h.hasTyp = &h.typ, true
		default:
			continue
		}
		if *dst, err = stringValue(m); err != nil {
			return h, fmt.Errorf("header %q is not a string: %w", m.name, ErrMalformed)
		}
	}
	if !hasAlg {
		return h, fmt.Errorf("no alg in header: %w", ErrMalformed)
	}
	return h, nil
}

// normalizeType implements RFC 9068 §4's comparison: case-insensitive, with
// the "application/" prefix optional (RFC 7515 §4.1.9).
func normalizeType(t string) string {
	t = strings.ToLower(t)
	return strings.TrimPrefix(t, "application/")
}

// validKID is the sanity check applied before a kid can trigger a fetch or
// appear in an error message: at most 128 bytes of
// [A-Za-z0-9_.-]. RFC 7638 thumbprints are 43 bytes of base64url.
func validKID(kid string) bool {
	if kid == "" || len(kid) > maxKIDLength {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// safeForMessage keeps attacker-chosen header values short and printable
// in error messages.
func safeForMessage(s string) string {
	if len(s) > 32 || !validKID(s) && s != "" {
		return "?"
	}
	return s
}

// lookup finds the key for kid pinned to alg, refetching the key set once
// (rate-limited, shared with every concurrent caller) when kid is unknown.
func (v *Verifier) lookup(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) (*verifyKey, error) {
	snap := v.keys.Load()
	if !snap.expires.IsZero() && !v.now().Before(snap.expires.Add(v.leeway)) {
		return nil, fmt.Errorf("set expired at %s: %w", snap.expires.UTC().Format(time.RFC3339), ErrSetExpired)
	}
	k, err := snap.find(kid, alg)
	if !errors.Is(err, ErrUnknownKey) || v.signed != nil {
		return k, err // a signed set is all there is: nothing to refetch
	}
	if !v.refetchForUnknownKID(ctx) {
		if cur := v.keys.Load(); cur != snap {
			// A fetch finished between the lookup above and the check
			// for one in flight (it stores the set before it stops
			// counting as in flight): its set may hold the key.
			return cur.find(kid, alg)
		}
		return nil, err
	}
	return v.keys.Load().find(kid, alg)
}

// refetchForUnknownKID asks the refresher for an immediate fetch and waits
// for it. At most one fetch is in flight: callers arriving while one is
// pending or running wait for that one. A new fetch starts only if the last fetch
// started at least the min refresh interval ago. It reports whether a
// fetch completed while the caller waited.
func (v *Verifier) refetchForUnknownKID(ctx context.Context) bool {
	v.mu.Lock()
	ch := v.pending
	if ch == nil && v.inflight != nil {
		// A scheduled fetch is running: it may well bring the new key
		// (a rotation is when verifiers meet unknown kids), so wait for
		// it rather than refuse a valid token while it is in flight.
		ch = v.inflight
	}
	if ch == nil {
		if v.now().Sub(v.lastFetch) < v.minInt {
			v.mu.Unlock()
			return false
		}
		ch = make(chan struct{})
		v.pending = ch
		select {
		case v.kick <- struct{}{}:
		default: // a kick is already queued; it will serve ch
		}
	}
	v.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	case <-v.stopped:
		return false
	}
}
