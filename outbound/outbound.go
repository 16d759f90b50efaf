// Package outbound is the one HTTP client Signet uses for every URL it
// fetches on someone else's word (a client's jwks_uri today; a trusted
// issuer's discovery document or an upstream provider tomorrow). Whoever
// registers the URL chooses where Signet connects, so the fetcher refuses
// what would turn Signet into a proxy into its own network (SSRF):
//
//   - https only; http only to a loopback host, and only when allowed
//     (a development issuer that is itself on loopback);
//   - no redirects;
//   - no loopback, private, link-local (cloud metadata), shared, reserved
//     or multicast address unless a configured network allows it, checked
//     on the resolved address at dial time, so a name that resolves (or is
//     rebound) to such an address is refused too; no proxy from the
//     environment, whose address would be the one checked;
//   - a size limit on the body (after decompression) and a time limit on
//     the whole exchange;
//   - a bounded cache that honours Cache-Control max-age and ETag within
//     [MinTTL, MaxTTL], one fetch in flight per URL, failures remembered
//     briefly, and a rate-limited refetch for a caller that found the
//     cached document stale (an unknown kid).
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors a fetch may wrap.
var (
	// ErrForbiddenURL: the URL's scheme, credentials or host is refused.
	ErrForbiddenURL = errors.New("outbound: URL not allowed")
	// ErrForbiddenAddress: the host resolved to an address that is refused.
	ErrForbiddenAddress = errors.New("outbound: address not allowed")
	// ErrRedirect: the server answered with a redirect, which is not followed.
	ErrRedirect = errors.New("outbound: redirects are not followed")
	// ErrTooLarge: the body is larger than MaxBody.
	ErrTooLarge = errors.New("outbound: response body too large")
	// ErrStatus: the server answered neither 200 nor 304.
	ErrStatus = errors.New("outbound: unexpected HTTP status")
)

// Defaults of Options.
const (
	DefaultMaxBody      = 64 << 10
	DefaultTimeout      = 5 * time.Second
	DefaultMinTTL       = time.Minute
	DefaultMaxTTL       = time.Hour
	DefaultRefetchEvery = 30 * time.Second
	DefaultMaxEntries   = 1000
)

// Options configure a Fetcher. Zero values are the defaults.
type Options struct {
	// AllowNetworks are address ranges that may be dialled although they
	// are loopback, private, link-local or otherwise refused: for example
	// 10.20.0.0/16 for key sets served inside the cluster.
	AllowNetworks []netip.Prefix
	// AllowLoopback permits http:// URLs to a loopback host and dialling
	// loopback addresses; set it only when the issuer itself is on
	// loopback (development).
	AllowLoopback bool
	// RootCAs verify servers' certificates; nil means the system roots.
	// Tests pass their test CA.
	RootCAs *x509.CertPool
	// MaxBody bounds a response body (default 64 KiB).
	MaxBody int64
	// Timeout bounds one exchange: dial, TLS, headers and body (default 5s).
	Timeout time.Duration
	// MinTTL and MaxTTL bound how long a document is cached whatever its
	// Cache-Control says (defaults 1m and 1h); without max-age it is
	// cached MinTTL.
	MinTTL, MaxTTL time.Duration
	// RefetchEvery is the least time between two network fetches of one
	// URL on Refresh, and how long a failure is remembered (default 30s).
	RefetchEvery time.Duration
	// MaxEntries bounds the cache (default 1000 URLs).
	MaxEntries int
	// Now is the clock of the cache; nil means time.Now.
	Now func() time.Time
	// Logger receives fetch failures; nil discards.
	Logger *slog.Logger
}

// Fetcher fetches and caches documents. It is safe for concurrent use.
type Fetcher struct {
	o      Options
	client *http.Client

	mu      sync.Mutex
	entries map[string]*entry
}

// entry is one URL's cached document. mu is held across a fetch, so one
// fetch per URL is in flight and the others wait for its result.
type entry struct {
	mu      sync.Mutex
	body    []byte
	value   any // decode(body)
	etag    string
	expires time.Time // fresh until
	stale   time.Time // the last good document is served, on failures, until then
	fetched time.Time // last network attempt
	err     error     // last failure, remembered until fetched+RefetchEvery
}

// New returns a Fetcher.
func New(o Options) *Fetcher {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinTTL <= 0 {
		o.MinTTL = DefaultMinTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	o.MaxTTL = max(o.MaxTTL, o.MinTTL)
	if o.RefetchEvery <= 0 {
		o.RefetchEvery = DefaultRefetchEvery
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fetcher{o: o, entries: map[string]*entry{}}
	dialer := &net.Dialer{Timeout: o.Timeout, Control: f.control}
	f.client = &http.Client{
		Timeout: o.Timeout,
		Transport: &http.Transport{
			Proxy:                  nil, // never a proxy from the environment: its address is not the one checked
			DialContext:            dialer.DialContext,
			TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    o.Timeout,
			ResponseHeaderTimeout:  o.Timeout,
			MaxResponseHeaderBytes: 16 << 10,
			MaxIdleConns:           16,
			IdleConnTimeout:        90 * time.Second,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return f
}

// CheckURL says whether rawURL may be fetched at all (scheme, credentials,
// a literal address); the address a name resolves to is checked at dial
// time.
func (f *Fetcher) CheckURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%w: not an absolute URL", ErrForbiddenURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL", ErrForbiddenURL)
	}
	host := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		if !f.o.AllowLoopback || !loopbackName(host) {
			return fmt.Errorf("%w: https is required (http only to a loopback host of a loopback issuer)", ErrForbiddenURL)
		}
	default:
		return fmt.Errorf("%w: scheme %s", ErrForbiddenURL, u.Scheme)
	}
	if ip, err := netip.ParseAddr(host); err == nil && !f.allowed(ip) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ip)
	}
	return nil
}

func loopbackName(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}

// control runs after name resolution, for every address the dialer tries.
func (f *Fetcher) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !f.allowed(ip) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, host)
	}
	return nil
}

// refused are ranges no public server lives in, beyond what netip's
// predicates name: shared address space (carrier NAT; some clouds serve
// metadata there), "this network", IETF, documentation and benchmarking
// ranges, the reserved 240/4, and IPv6 transition ranges that embed an
// IPv4 address (NAT64, 6to4) or are deprecated site-local.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fec0::/10"),
}

// allowed says whether ip may be dialled.
func (f *Fetcher) allowed(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range f.o.AllowNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	if ip.IsLoopback() {
		return f.o.AllowLoopback
	}
	if !ip.IsValid() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range refused {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Get returns decode of the document at rawURL, from the cache while it
// is fresh. decode runs once per fetched body; a body it refuses is an
// error like a failed fetch. Callers of one URL must pass the same decode.
func Get[T any](ctx context.Context, f *Fetcher, rawURL string, decode func([]byte) (T, error)) (T, error) {
	v, err := f.get(ctx, rawURL, false, func(b []byte) (any, error) { return decode(b) })
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

// Refresh is Get for a caller that found the cached document wanting (a
// kid it does not list): it fetches again unless the last fetch of rawURL
// was less than RefetchEvery ago, so a stream of unknown kids costs the
// owner of the URL at most one request per RefetchEvery.
func Refresh[T any](ctx context.Context, f *Fetcher, rawURL string, decode func([]byte) (T, error)) (T, error) {
	v, err := f.get(ctx, rawURL, true, func(b []byte) (any, error) { return decode(b) })
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

func (f *Fetcher) entry(rawURL string) *entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entries[rawURL]
	if e == nil {
		if len(f.entries) >= f.o.MaxEntries {
			for k := range f.entries { // an arbitrary one: the map is a bound, not an LRU
				delete(f.entries, k)
				break
			}
		}
		e = &entry{}
		f.entries[rawURL] = e
	}
	return e
}

func (f *Fetcher) get(ctx context.Context, rawURL string, force bool, decode func([]byte) (any, error)) (any, error) {
	if err := f.CheckURL(rawURL); err != nil {
		return nil, err
	}
	e := f.entry(rawURL)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := f.o.Now()
	recent := !e.fetched.IsZero() && now.Sub(e.fetched) < f.o.RefetchEvery
	switch {
	case e.err != nil && recent:
		return nil, e.err
	case e.value != nil && now.Before(e.expires) && (!force || recent):
		return e.value, nil
	case e.value != nil && force && recent:
		return e.value, nil
	}
	e.fetched = now
	err := f.fetch(ctx, rawURL, e, decode)
	if err != nil {
		f.o.Logger.LogAttrs(ctx, slog.LevelWarn, "outbound fetch failed", slog.String("url", rawURL), slog.String("err", err.Error()))
		if e.value != nil && now.Before(e.stale) {
			// The last good document, for at most MaxTTL past its
			// lifetime, tried again no sooner than RefetchEvery.
			e.expires = now.Add(f.o.RefetchEvery)
			if e.expires.After(e.stale) {
				e.expires = e.stale
			}
			return e.value, nil
		}
		e.err, e.value, e.body, e.etag = err, nil, nil, ""
		return nil, err
	}
	e.err = nil
	return e.value, nil
}

// fetch does one conditional GET and updates e.
func (f *Fetcher) fetch(ctx context.Context, rawURL string, e *entry, decode func([]byte) (any, error)) error {
	ctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbiddenURL, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	req.Header.Set("User-Agent", "signet")
	if e.etag != "" && e.value != nil {
		req.Header.Set("If-None-Match", e.etag)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && e.value != nil:
		e.expires = f.o.Now().Add(f.ttl(resp.Header))
		e.stale = e.expires.Add(f.o.MaxTTL)
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("fetch %s: %w (status %d)", rawURL, ErrRedirect, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("fetch %s: %w %d", rawURL, ErrStatus, resp.StatusCode)
	}
	if resp.ContentLength > f.o.MaxBody {
		return fmt.Errorf("fetch %s: %w (more than %d bytes)", rawURL, ErrTooLarge, f.o.MaxBody)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.o.MaxBody+1))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if int64(len(body)) > f.o.MaxBody {
		return fmt.Errorf("fetch %s: %w (more than %d bytes)", rawURL, ErrTooLarge, f.o.MaxBody)
	}
	v, err := decode(body)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	e.body, e.value, e.etag = body, v, resp.Header.Get("ETag")
	e.expires = f.o.Now().Add(f.ttl(resp.Header))
	e.stale = e.expires.Add(f.o.MaxTTL)
	return nil
}

// ttl is the cache lifetime Cache-Control asks for, within [MinTTL, MaxTTL].
func (f *Fetcher) ttl(h http.Header) time.Duration {
	d := f.o.MinTTL
	for _, dir := range strings.Split(h.Get("Cache-Control"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(k) {
		case "no-store", "no-cache":
			return f.o.MinTTL
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64); err == nil && n >= 0 {
				d = time.Duration(min(n, int64(f.o.MaxTTL/time.Second)+1)) * time.Second
			}
		}
	}
	return min(max(d, f.o.MinTTL), f.o.MaxTTL)
}

// IsLoopbackURL says whether rawURL's host is localhost or a loopback
// address: an issuer there is a development setup, whose fetcher may
// allow loopback (Options.AllowLoopback).
func IsLoopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && loopbackName(u.Hostname())
}

// PostForm POSTs form, form-encoded, to rawURL under the same rules as a
// fetch (the URL and every dialled address checked, no redirect followed,
// the time limit on the whole exchange) and reads at most MaxBody of the
// answer, which is discarded. It returns nil on a 2xx; ErrRedirect for a
// 3xx, ErrStatus for anything else. Nothing is cached. Back-channel logout
// tokens are delivered this way.
func (f *Fetcher) PostForm(ctx context.Context, rawURL string, form url.Values) error {
	if err := f.CheckURL(rawURL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbiddenURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "signet")
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	// Read (a bounded part of) the answer so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, f.o.MaxBody))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("post %s: %w (status %d)", rawURL, ErrRedirect, resp.StatusCode)
	default:
		return fmt.Errorf("post %s: %w %d", rawURL, ErrStatus, resp.StatusCode)
	}
}
