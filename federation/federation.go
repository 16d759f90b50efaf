// Package federation is federated workload identity: a service
// authenticates with a token an external issuer already gave it (a
// Kubernetes projected service-account token, a SPIFFE JWT-SVID, a CI
// job's OIDC token, another Signet's) instead of a client secret. The
// operator declares the trusted issuers and their policy (Issuer); a
// client binds issuer + subject, exact or a one-segment pattern
// (clients.FederatedIdentity). The token is accepted as a client
// assertion (clientauth calls Identify) and as the RFC 7523 §2.1
// jwt-bearer grant (Grant, mounted through authority.Config.Grants).
package federation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/replay"
	"github.com/signet-auth/signet/storage"
)

// Defaults of an issuer's policy.
const (
	// DefaultMaxLifetime is how far ahead a token's exp may be: a
	// Kubernetes projected token's default expirationSeconds.
	DefaultMaxLifetime = time.Hour
	// MaxMaxLifetime caps Issuer.MaxLifetime.
	MaxMaxLifetime = 24 * time.Hour
	maxJTILen      = 256
	// maxMappedValue bounds one mapped claim's JSON value.
	maxMappedValue = 1024
)

// DiscoveryPath is where an issuer publishes its OpenID Provider
// metadata, jwks_uri among it (OpenID Connect Discovery §4; kube-apiserver
// serves it for its service-account issuer).
const DiscoveryPath = "/.well-known/openid-configuration"

// Issuer is one trusted external issuer and its policy.
type Issuer struct {
	// Issuer is the iss its tokens carry, exactly.
	Issuer string
	// Keys are the issuer's verification keys, for an issuer Signet
	// cannot reach (a static JWKS file); nil fetches them through
	// discovery: Issuer + DiscoveryPath, then its jwks_uri.
	Keys []clients.PublicKey
	// Algorithms its tokens may use: asymmetric only (default every
	// asymmetric one the key allows).
	Algorithms []string
	// Audiences are the aud values accepted for a binding that names
	// none; default Signet's issuer URL and token endpoint URL.
	Audiences []string
	// MaxLifetime caps how far ahead exp may be (default 1h, at most 24h).
	MaxLifetime time.Duration
	// AllowReuse accepts a token's jti more than once. Off (the default),
	// a token with a jti is single use (replay.Cache in the store); a
	// token without one cannot be tracked and is accepted until exp.
	AllowReuse bool
	// Claims map a claim of the external token (a dotted path such as
	// kubernetes.io.namespace) to a claim name of the jwt-bearer grant's
	// access token. No other external claim reaches a Signet token, and no
	// name Signet sets may be a target.
	Claims map[string]string
}

// Config configures a Federation.
type Config struct {
	Issuers []Issuer
	// Signet is Signet's issuer URL: the default audience, with its token
	// endpoint URL.
	Signet string
	// Fetcher fetches discovery documents and key sets (required when an
	// issuer has no static Keys).
	Fetcher *outbound.Fetcher
	// Store keeps the spent jtis (clientauth.JTIBucket, purged with the
	// client assertions').
	Store storage.Store
	// Leeway is the clock skew allowed (default clientauth.DefaultLeeway).
	Leeway time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Federation verifies federated tokens. It is safe for concurrent use.
type Federation struct {
	cfg     Config
	issuers map[string]*Issuer
	jtis    *replay.Cache
	log     *slog.Logger
	// verified spares the second signature check of a token verified a
	// moment ago (verified.go): the jwt-bearer grant's.
	verified verifiedTokens
}

// New checks cfg and returns a Federation.
func New(cfg Config) (*Federation, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = clientauth.DefaultLeeway
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Federation{cfg: cfg, issuers: map[string]*Issuer{}, log: cfg.Logger}
	signet := strings.TrimSuffix(cfg.Signet, "/")
	for i := range cfg.Issuers {
		is := cfg.Issuers[i]
		if err := check(&is, signet, cfg.Fetcher != nil); err != nil {
			return nil, fmt.Errorf("federation: issuer %q: %w", is.Issuer, err)
		}
		if f.issuers[is.Issuer] != nil {
			return nil, fmt.Errorf("federation: issuer %q is declared twice", is.Issuer)
		}
		f.issuers[is.Issuer] = &is
	}
	if cfg.Store == nil {
		return nil, errors.New("federation: a store is required (single-use jti)")
	}
	f.jtis = replay.New(cfg.Store, clientauth.JTIBucket, cfg.Now)
	return f, nil
}

// check validates one issuer's policy and fills in its defaults.
func check(is *Issuer, signet string, canFetch bool) error {
	if is.Issuer == "" {
		return errors.New("issuer is empty")
	}
	if is.Keys == nil && !canFetch {
		return errors.New("no static keys and no outbound fetcher for discovery")
	}
	if len(is.Algorithms) == 0 {
		is.Algorithms = clients.AssertionAlgorithms()
	}
	for _, a := range is.Algorithms {
		if !clientauth.AsymmetricAlg(a) {
			return fmt.Errorf("algorithm %q: only asymmetric algorithms (%s)", a, strings.Join(clients.AssertionAlgorithms(), ", "))
		}
	}
	if len(is.Audiences) == 0 {
		is.Audiences = []string{signet, signet + clientauth.TokenPath}
	}
	switch {
	case is.MaxLifetime == 0:
		is.MaxLifetime = DefaultMaxLifetime
	case is.MaxLifetime < 0 || is.MaxLifetime > MaxMaxLifetime:
		return fmt.Errorf("max lifetime %s: between 1s and %s", is.MaxLifetime, MaxMaxLifetime)
	}
	targets := map[string]string{}
	for src, dst := range is.Claims {
		if p := MappedClaimProblem(src, dst); p != "" {
			return errors.New(p)
		}
		if prev, dup := targets[dst]; dup {
			return fmt.Errorf("claims %q and %q both map to %q", prev, src, dst)
		}
		targets[dst] = src
	}
	return nil
}

// MappedClaimProblem says why src → dst cannot be a claim mapping; "" when
// it can. The target may not be a claim Signet sets or reads in any case
// (clients.ClaimNameProblem), so an external token never speaks for sub,
// scope, cnf or a user's claims.
func MappedClaimProblem(src, dst string) string {
	switch {
	case src == "" || len(src) > 256 || strings.ContainsFunc(src, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return fmt.Sprintf("claim %q: a source claim is 1 to 256 printable characters (a dotted path such as kubernetes.io.namespace)", src)
	case dst == "" || len(dst) > 64 || strings.ContainsFunc(dst, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' || r == ':')
	}):
		return fmt.Sprintf("claim %q maps to %q: a target is 1 to 64 characters of A-Z a-z 0-9 _ - . :", src, dst)
	}
	if p := clients.ClaimNameProblem(dst, true); p != "" {
		return fmt.Sprintf("claim %q maps to %q: %s; choose another name such as k8s_namespace", src, dst, p)
	}
	return ""
}

// Trusts reports whether iss is a trusted issuer (clientauth.Federation).
func (f *Federation) Trusts(iss string) bool { return f.issuers[iss] != nil }

// Issuers are the trusted issuers' iss values.
func (f *Federation) Issuers() []string {
	var out []string
	for iss := range f.issuers {
		out = append(out, iss)
	}
	slices.Sort(out)
	return out
}

// Identify is clientauth.Federation: the client bound to tok, the one
// named clientID when given.
func (f *Federation) Identify(ctx context.Context, reg *clients.Registry, clientID, tok string, consume bool) (*clients.Entry, string, error) {
	v, problem, err := f.verify(ctx, tok, consume, func(t *clientauth.JWT) ([]*clients.Entry, error) {
		if clientID == "" {
			return reg.BoundTo(t.Iss, t.Sub), nil
		}
		if !clients.ValidID(clientID) {
			return nil, nil
		}
		ent, err := reg.Lookup(ctx, clientID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		return []*clients.Entry{ent}, err
	})
	if v == nil {
		return nil, problem, err
	}
	return v.ent, "", nil
}

// verified is a federated token that passed every check.
type verified struct {
	tok *clientauth.JWT
	is  *Issuer
	ent *clients.Entry
}

// verify checks tok: well formed, from a trusted issuer, an allowed alg,
// its times, its signature by the issuer's key, bound to exactly one of
// the candidates, for the binding's audience, and (consume) its jti not
// spent before. Cheap checks run before the signature.
func (f *Federation) verify(ctx context.Context, tok string, consume bool, candidates func(*clientauth.JWT) ([]*clients.Entry, error)) (*verified, string, error) {
	t, err := clientauth.ParseJWT(tok)
	if err != nil {
		return nil, "malformed federated token: " + err.Error(), nil
	}
	is := f.issuers[t.Iss]
	if is == nil {
		return nil, "the token's issuer is not a trusted issuer", nil
	}
	if !slices.Contains(is.Algorithms, t.Alg) {
		return nil, "federated token alg must be one of " + strings.Join(is.Algorithms, ", "), nil
	}
	now := f.cfg.Now()
	if p := t.TimeProblem("federated token", now, f.cfg.Leeway, is.MaxLifetime); p != "" {
		return nil, p, nil
	}
	if p := kubernetesProblem(t); p != "" {
		return nil, p, nil
	}
	if !f.verified.seen(tok, now) {
		ok, err := f.verifySignature(ctx, is, t)
		if err != nil {
			return nil, "the trusted issuer's keys could not be fetched", err
		}
		if !ok {
			return nil, "federated token signature does not verify with the issuer's keys", nil
		}
		f.verified.add(tok, now)
	}
	ents, err := candidates(t)
	if err != nil {
		return nil, "", err
	}
	var bound []*clients.Entry
	audOK := false
	for _, ent := range ents {
		for _, b := range ent.Record.Federated {
			if !b.Matches(t.Iss, t.Sub) {
				continue
			}
			if !slices.Contains(bound, ent) {
				bound = append(bound, ent)
			}
			auds := is.Audiences
			if b.Audience != "" {
				auds = []string{b.Audience}
			}
			audOK = audOK || slices.ContainsFunc(t.Aud, func(a string) bool { return slices.Contains(auds, a) })
		}
	}
	switch {
	case len(bound) == 0:
		return nil, "no client is bound to this token's issuer and subject", nil
	case len(bound) > 1:
		return nil, "several clients are bound to this token's issuer and subject: send client_id", nil
	case !audOK:
		return nil, "federated token aud does not name this server (or the audience its binding expects)", nil
	}
	if consume && !is.AllowReuse && t.Jti != "" {
		if len(t.Jti) > maxJTILen {
			return nil, "federated token jti is longer than 256 characters", nil
		}
		fresh, err := f.jtis.Remember(ctx, jtiKey(t.Iss, t.Jti), time.Unix(t.Exp, 0).Add(f.cfg.Leeway))
		if err != nil {
			return nil, "", fmt.Errorf("record federated token: %w", err)
		}
		if !fresh {
			return nil, "federated token was already used (its jti is single use)", nil
		}
	}
	return &verified{tok: t, is: is, ent: bound[0]}, "", nil
}

// jtiKey keys a spent federated jti in clientauth.JTIBucket, apart from
// the client assertions' (sha256 of client id NUL jti): a client id has
// no NUL and no prefix.
func jtiKey(iss, jti string) string {
	h := sha256.Sum256([]byte("federated\x00" + iss + "\x00" + jti))
	return hex.EncodeToString(h[:])
}

// verifySignature verifies t with the issuer's keys: the configured ones,
// or its published set (clientauth.JWT.VerifyAt: refetched once, rate
// limited, when it lacks the token's kid, as the issuer may have rotated).
func (f *Federation) verifySignature(ctx context.Context, is *Issuer, t *clientauth.JWT) (bool, error) {
	if is.Keys != nil {
		ok, _ := t.Verify(is.Keys)
		return ok, nil
	}
	uri, err := f.jwksURI(ctx, is)
	if err != nil {
		return false, err
	}
	ok, err := t.VerifyAt(ctx, f.cfg.Fetcher, uri)
	if err != nil {
		return false, fmt.Errorf("keys of %s: %w", is.Issuer, err)
	}
	return ok, nil
}

// discovery is the part of the OpenID Provider metadata Signet reads.
type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

func decodeDiscovery(b []byte) (discovery, error) {
	var d discovery
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("discovery document is not a JSON object: %w", err)
	}
	if d.JWKSURI == "" {
		return d, errors.New("discovery document has no jwks_uri")
	}
	return d, nil
}

// jwksURI reads the issuer's jwks_uri from its discovery document, which
// must name the same issuer (OpenID Connect Discovery §4.3): a document
// copied from elsewhere cannot point Signet at other keys.
func (f *Federation) jwksURI(ctx context.Context, is *Issuer) (string, error) {
	d, err := outbound.Get(ctx, f.cfg.Fetcher, strings.TrimSuffix(is.Issuer, "/")+DiscoveryPath, decodeDiscovery)
	if err != nil {
		return "", fmt.Errorf("discovery of %s: %w", is.Issuer, err)
	}
	if d.Issuer != is.Issuer {
		return "", fmt.Errorf("discovery of %s names the issuer %q", is.Issuer, d.Issuer)
	}
	return d.JWKSURI, nil
}

// kubernetesProblem checks the kubernetes.io claim of a projected
// service-account token when there is one: its namespace and service
// account must be the ones sub names, so a binding on sub and a mapping
// of kubernetes.io.namespace can never disagree.
func kubernetesProblem(t *clientauth.JWT) string {
	var c struct {
		K8s *struct {
			Namespace      string `json:"namespace"`
			ServiceAccount *struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(t.Payload, &c); err != nil || c.K8s == nil {
		return "" // not the claim's shape: nothing mapped from it will be either
	}
	if c.K8s.ServiceAccount == nil || c.K8s.Namespace == "" || t.Sub != "system:serviceaccount:"+c.K8s.Namespace+":"+c.K8s.ServiceAccount.Name {
		return "the kubernetes.io claim does not name the service account of sub"
	}
	return ""
}
