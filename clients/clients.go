// Package clients is Signet's client registry: the OAuth clients in
// storage, the validation of their settings, their secrets (stored as
// SHA-256 hashes only) and the in-memory copy the token endpoint reads,
// kept fresh from storage.Watch.
package clients

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-auth/signet/storage"
)

// clientsBucket holds one JSON Record per client, keyed by client id.
const clientsBucket = "clients"

// Grant types and client authentication methods Signet implements.
const (
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantAuthorizationCode = "authorization_code"
	// GrantDeviceCode is the RFC 8628 device authorization grant.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantJWTBearer is the RFC 7523 §2.1 JWT authorization grant.
	GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// GrantTokenExchange is the RFC 8693 token exchange grant.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	AuthSecretBasic    = "client_secret_basic"
	AuthSecretPost     = "client_secret_post"
	// AuthNone is a public client's method: client_id only, no secret.
	AuthNone = "none"
)

// Defaults for token lifetimes and the signing algorithm.
const (
	DefaultTokenTTL = 15 * time.Minute
	DefaultMaxTTL   = time.Hour
	DefaultAlg      = "RS256"
)

// maxSecretOverlap caps how long a rotated-out secret stays accepted: an
// overlap is for rolling a deployment, not for keeping two secrets forever.
const maxSecretOverlap = 30 * 24 * time.Hour

var (
	// ErrExists is returned by Create when the client id is taken.
	ErrExists = errors.New("clients: client already exists")
	// ErrNotEmpty is returned by CreateFirst when the store already has a client.
	ErrNotEmpty = errors.New("clients: store already has clients")
)

// supportedAlgorithms are the asymmetric JWS algorithms Signet can sign
// with. HS* never: a symmetric key cannot be published.
// supportedGrants are the grant types a client may be allowed.
var supportedGrants = []string{GrantClientCredentials, GrantPassword, GrantRefreshToken, GrantAuthorizationCode, GrantDeviceCode, GrantJWTBearer, GrantTokenExchange}

// extensionGrants are served by packages of their own through
// authority.Config.Grants; a server without them configured refuses them.
var extensionGrants = []string{GrantJWTBearer, GrantTokenExchange}

// ExtensionGrant reports whether g is served outside the authority
// package (authority.Config.Grants).
func ExtensionGrant(g string) bool { return slices.Contains(extensionGrants, g) }

// maxRefreshReuseGrace caps Client.RefreshReuseGrace.
const maxRefreshReuseGrace = time.Minute

// maxRefreshTTL caps the refresh lifetimes a client may set.
const maxRefreshTTL = 366 * 24 * time.Hour

var supportedAlgorithms = []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"}

// AdminScope is the scope of the admin API. A public client may not hold
// it: anyone can act as a public client.
const AdminScope = "signet:admin"

// SupportedAlgorithm reports whether Signet can sign with alg.
func SupportedAlgorithm(alg string) bool { return slices.Contains(supportedAlgorithms, alg) }

// SupportedAlgorithms returns the algorithms Signet can sign with.
func SupportedAlgorithms() []string { return slices.Clone(supportedAlgorithms) }

// SupportedGrant reports whether Signet implements grant type g.
func SupportedGrant(g string) bool { return slices.Contains(supportedGrants, g) }

// SupportedGrants returns the grant types Signet implements.
func SupportedGrants() []string { return slices.Clone(supportedGrants) }

// ValidationError names the client field that is wrong and why. Problem
// is in the RFC 6749 error_description charset: the admin API sends it.
type ValidationError struct {
	Field   string
	Problem string
}

func (e *ValidationError) Error() string {
	return "invalid client: " + e.Field + ": " + e.Problem
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("15m0s"); it also reads a number of seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "15m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "90s", "15m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"15m\" or a number of seconds")
	}
	*d = Duration(time.Duration(n) * time.Second)
	return nil
}

// Client is an OAuth client as the admin API and the CLI show it. Its
// secret is never part of it: only a SHA-256 hash is stored, and the secret
// itself is returned once, by Create and RotateSecret.
type Client struct {
	ID string `json:"client_id"`
	// GrantTypes are the grants the client may use. Create defaults it to
	// client_credentials; an explicit empty list (by Update) leaves a client
	// that can authenticate but obtain no token.
	GrantTypes  []string `json:"grant_types"`
	AuthMethods []string `json:"token_endpoint_auth_methods"`
	// Scopes are the scopes the client may ask for; DefaultScopes are
	// granted when it asks for none.
	Scopes        []string `json:"scopes,omitempty"`
	DefaultScopes []string `json:"default_scopes,omitempty"`
	// Audiences are the aud values the client may ask for (audience or
	// RFC 8707 resource); DefaultAudience is used when it asks for none.
	Audiences       []string `json:"audiences"`
	DefaultAudience string   `json:"default_audience"`
	SigningAlg      string   `json:"signing_alg"`
	AccessTokenTTL  Duration `json:"access_token_ttl"`
	// ExtraClaims are added to every access token; they may not replace a
	// registered claim.
	ExtraClaims map[string]json.RawMessage `json:"extra_claims,omitempty"`
	Disabled    bool                       `json:"disabled"`
	// RefreshIdleTTL and RefreshAbsoluteTTL override the server's refresh
	// token lifetimes for this client (0: the server's); they can only
	// shorten them.
	RefreshIdleTTL     Duration `json:"refresh_idle_ttl,omitempty"`
	RefreshAbsoluteTTL Duration `json:"refresh_absolute_ttl,omitempty"`
	// RefreshReuseGrace (0 to 60s, default 0) is how long after a rotation
	// the refresh token just replaced may be presented again (a retry after
	// a lost response) without the family being revoked as reused.
	RefreshReuseGrace Duration `json:"refresh_reuse_grace,omitempty"`
	// RefreshTokenCookie delivers refresh tokens in an HttpOnly, Secure,
	// SameSite=Strict cookie (Path=/oauth2) instead of the JSON body, and
	// accepts them from it.
	RefreshTokenCookie bool `json:"refresh_token_cookie,omitempty"`
	// Introspect allows the client to call /oauth2/introspect.
	Introspect bool `json:"introspect,omitempty"`
	// PreviousSecretExpiresAt is when the secret replaced by the last
	// rotation stops working; zero when there is none.
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	CreatedAt               time.Time `json:"created_at,omitzero"`
	UpdatedAt               time.Time `json:"updated_at,omitzero"`

	// Browser login (authorization_code); see oidc.go.
	//
	// RedirectURIs are compared byte for byte with redirect_uri;
	// PostLogoutRedirectURIs likewise with post_logout_redirect_uri.
	RedirectURIs           []string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// Public clients have no secret (token endpoint auth method none) and
	// must use PKCE.
	Public bool `json:"public,omitempty"`
	// FirstParty clients skip the consent page.
	FirstParty bool `json:"first_party,omitempty"`
	// ApplicationType is web (default) or native; only native clients may
	// use RFC 8252 loopback redirects on any port.
	ApplicationType string `json:"application_type,omitempty"`
	// IDTokenSignedResponseAlg signs this client's ID tokens (default RS256).
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
	// RequirePKCE (nil: true) makes code_challenge mandatory.
	RequirePKCE *bool `json:"require_pkce,omitempty"`
	// ClientName is shown to users on the consent page.
	ClientName string `json:"client_name,omitempty"`
	// Dynamic marks a client that registered itself (RFC 7591) or is
	// known by its metadata document (dynamic.go): never first-party,
	// never client_credentials, never a signet:* scope. Only the
	// registration endpoint sets it.
	Dynamic bool `json:"dynamic,omitempty"`
	// RequireSecondFactor: users sign in to this client with a second
	// factor as well as their password (package mfa).
	RequireSecondFactor bool `json:"require_second_factor,omitempty"`

	// private_key_jwt (keys.go): the client's public keys, inline (a JWK
	// Set) or at an https URL, and the algorithms its assertions may use
	// (default: every asymmetric one).
	JWKS          json.RawMessage `json:"jwks,omitempty"`
	JWKSURI       string          `json:"jwks_uri,omitempty"`
	AssertionAlgs []string        `json:"token_endpoint_auth_signing_algs,omitempty"`

	// ExchangeAudiences are the audiences (or RFC 8707 resources) the
	// client may exchange a token into (RFC 8693, package exchange); a
	// client with the token exchange grant needs at least one.
	ExchangeAudiences []string `json:"token_exchange_audiences,omitempty"`

	// DPoPBoundAccessTokens (RFC 9449 §5.2) refuses the client's token
	// requests that carry no DPoP proof: its tokens are always bound.
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
	// Federated are the external workload identities that authenticate
	// as this client (federated.go, package federation).
	Federated []FederatedIdentity `json:"federated_identities,omitempty"`
	// OpenID Connect Back-Channel Logout 1.0 (backchannel.go): where
	// logout tokens are POSTed when a session the client got tokens in
	// ends, and whether they must carry sid.
	BackchannelLogoutURI             string `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool   `json:"backchannel_logout_session_required,omitempty"`
}

// Patch changes the fields that are set and leaves the others alone.
type Patch struct {
	GrantTypes      *[]string                   `json:"grant_types,omitempty"`
	AuthMethods     *[]string                   `json:"token_endpoint_auth_methods,omitempty"`
	Scopes          *[]string                   `json:"scopes,omitempty"`
	DefaultScopes   *[]string                   `json:"default_scopes,omitempty"`
	Audiences       *[]string                   `json:"audiences,omitempty"`
	DefaultAudience *string                     `json:"default_audience,omitempty"`
	SigningAlg      *string                     `json:"signing_alg,omitempty"`
	AccessTokenTTL  *Duration                   `json:"access_token_ttl,omitempty"`
	ExtraClaims     *map[string]json.RawMessage `json:"extra_claims,omitempty"`
	Disabled        *bool                       `json:"disabled,omitempty"`

	RefreshIdleTTL     *Duration `json:"refresh_idle_ttl,omitempty"`
	RefreshAbsoluteTTL *Duration `json:"refresh_absolute_ttl,omitempty"`
	RefreshReuseGrace  *Duration `json:"refresh_reuse_grace,omitempty"`
	RefreshTokenCookie *bool     `json:"refresh_token_cookie,omitempty"`
	Introspect         *bool     `json:"introspect,omitempty"`

	RedirectURIs             *[]string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs   *[]string `json:"post_logout_redirect_uris,omitempty"`
	FirstParty               *bool     `json:"first_party,omitempty"`
	ApplicationType          *string   `json:"application_type,omitempty"`
	IDTokenSignedResponseAlg *string   `json:"id_token_signed_response_alg,omitempty"`
	RequirePKCE              *bool     `json:"require_pkce,omitempty"`
	ClientName               *string   `json:"client_name,omitempty"`
	RequireSecondFactor      *bool     `json:"require_second_factor,omitempty"`

	JWKS          *json.RawMessage `json:"jwks,omitempty"`
	JWKSURI       *string          `json:"jwks_uri,omitempty"`
	AssertionAlgs *[]string        `json:"token_endpoint_auth_signing_algs,omitempty"`

	ExchangeAudiences                *[]string            `json:"token_exchange_audiences,omitempty"`
	DPoPBoundAccessTokens            *bool                `json:"dpop_bound_access_tokens,omitempty"`
	Federated                        *[]FederatedIdentity `json:"federated_identities,omitempty"`
	BackchannelLogoutURI             *string              `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired *bool                `json:"backchannel_logout_session_required,omitempty"`
}

// Record is what is stored: the client plus its secret hashes.
type Record struct {
	Client
	SecretHash         []byte `json:"secret_sha256"`
	PreviousSecretHash []byte `json:"previous_secret_sha256,omitempty"`
	// Instance is this life of the client id (instance.go): set by create,
	// never changed; "" for records older than instances.
	Instance string `json:"instance,omitempty"`
	// RegistrationTokenHash is the SHA-256 of a dynamic client's
	// registration access token (RFC 7592).
	RegistrationTokenHash []byte `json:"registration_token_sha256,omitempty"`
}

// Options configure a client registry.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Algorithms are the live signing algorithms a client may choose; nil
	// means every algorithm Signet supports (offline tools that do not know
	// the server's configuration).
	Algorithms []string
	// DefaultTokenTTL (15m) and MaxTokenTTL (1h) bound access-token lifetimes.
	DefaultTokenTTL time.Duration
	MaxTokenTTL     time.Duration
	// Logger receives cache refresh failures; nil discards.
	Logger *slog.Logger
}

// Registry is the client registry. New gives a registry that reads
// and writes the store directly (what the offline CLI uses); the server
// also keeps every client in memory, refreshed from store.Watch, so the
// token endpoint never reads storage.
type Registry struct {
	store      storage.Store
	now        func() time.Time
	algs       []string
	defaultAlg string
	defaultTTL time.Duration
	maxTTL     time.Duration
	log        *slog.Logger

	// cached is set once Watch has loaded every client; then cache (id →
	// *Entry) is authoritative for lookups. mu serialises refreshes
	// so that the last one to run stored the newest committed state.
	cached bool
	cache  sync.Map
	mu     sync.Mutex
	// unread holds the ids whose refresh failed on a store error (id →
	// struct{}): they are out of cache (fail closed) and Lookup reads them
	// from the store until a read succeeds, since no watch event may come
	// again to bring them back.
	unread sync.Map

	// resolver builds metadata-document clients; touchEvery and touched
	// note the use of dynamic clients (dynamic.go).
	resolver   resolverSlot
	touchEvery atomic.Int64
	touched    sync.Map
}

// New returns a registry over store.
func New(store storage.Store, opts Options) *Registry {
	c := &Registry{store: store, now: opts.Now, algs: opts.Algorithms, defaultTTL: opts.DefaultTokenTTL, maxTTL: opts.MaxTokenTTL, log: opts.Logger}
	if c.now == nil {
		c.now = time.Now
	}
	if len(c.algs) == 0 {
		c.algs = supportedAlgorithms
	}
	c.defaultAlg = c.algs[0]
	if slices.Contains(c.algs, DefaultAlg) {
		c.defaultAlg = DefaultAlg
	}
	if c.maxTTL <= 0 {
		c.maxTTL = DefaultMaxTTL
	}
	if c.defaultTTL <= 0 {
		c.defaultTTL = min(DefaultTokenTTL, c.maxTTL)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Create validates spec, fills in defaults, generates a secret and stores
// the client. The secret is returned here and never again.
func (c *Registry) Create(ctx context.Context, spec Client) (Client, string, error) {
	return c.create(ctx, spec, false)
}

// CreateFirst is Create on an empty registry only: it returns
// ErrNotEmpty if any client exists, checked in the same transaction.
func (c *Registry) CreateFirst(ctx context.Context, spec Client) (Client, string, error) {
	return c.create(ctx, spec, true)
}

func (c *Registry) create(ctx context.Context, spec Client, onlyFirst bool) (Client, string, error) {
	spec.Dynamic = false // only CreateDynamic makes dynamic clients
	return c.createWith(ctx, spec, func(tx storage.Tx, _ *Record) error {
		if !onlyFirst {
			return nil
		}
		found := false
		if err := tx.Scan(clientsBucket, "", func(string, []byte) error { found = true; return errStopScan }); err != nil && !errors.Is(err, errStopScan) {
			return err
		}
		if found {
			return ErrNotEmpty
		}
		return nil
	})
}

// fillDefaults sets what a new client leaves out.
func (c *Registry) fillDefaults(cl *Client) {
	if len(cl.GrantTypes) == 0 {
		cl.GrantTypes = []string{GrantClientCredentials}
	}
	if len(cl.AuthMethods) == 0 {
		cl.AuthMethods = []string{AuthSecretBasic, AuthSecretPost}
		if cl.Public {
			cl.AuthMethods = []string{AuthNone}
		} else if len(cl.JWKS) > 0 || cl.JWKSURI != "" || len(cl.Federated) > 0 {
			cl.AuthMethods = []string{AuthPrivateKeyJWT}
		}
	}

	if cl.DefaultScopes == nil {
		cl.DefaultScopes = slices.Clone(cl.Scopes)
	}
	if cl.DefaultAudience == "" && len(cl.Audiences) > 0 {
		cl.DefaultAudience = cl.Audiences[0]
	}
	if cl.SigningAlg == "" {
		cl.SigningAlg = c.defaultAlg
	}
	if cl.AccessTokenTTL == 0 {
		cl.AccessTokenTTL = Duration(c.defaultTTL)
	}
}

// createWith validates and stores a new client; inTx runs in the
// transaction before the record is written and may change it.
func (c *Registry) createWith(ctx context.Context, spec Client, inTx func(tx storage.Tx, rec *Record) error) (Client, string, error) {
	now := c.now().UTC()
	cl := spec
	cl.CreatedAt, cl.UpdatedAt, cl.PreviousSecretExpiresAt = now, now, time.Time{}
	c.fillDefaults(&cl)
	if err := c.validate(&cl); err != nil {
		return Client{}, "", err
	}
	secret, hash := newSecret()
	if !slices.Contains(cl.AuthMethods, AuthSecretBasic) && !slices.Contains(cl.AuthMethods, AuthSecretPost) {
		secret, hash = "", nil // public or private_key_jwt: no secret to authenticate with
	}
	err := c.store.Update(ctx, func(tx storage.Tx) error {
		rec := Record{Client: cl, SecretHash: hash, Instance: newClientInstance()}
		if err := inTx(tx, &rec); err != nil {
			return err
		}
		if _, err := tx.Get(clientsBucket, cl.ID); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, cl.ID)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode client %s: %w", cl.ID, err)
		}
		return tx.Put(clientsBucket, cl.ID, val)
	})
	if err != nil {
		return Client{}, "", fmt.Errorf("create client %s: %w", cl.ID, err)
	}
	c.refresh(ctx, cl.ID)
	return cl, secret, nil
}

var errStopScan = errors.New("stop scan")

// Get returns the client with id, or an error wrapping storage.ErrNotFound.
func (c *Registry) Get(ctx context.Context, id string) (Client, error) {
	rec, err := c.load(ctx, id)
	if err != nil {
		return Client{}, err
	}
	return rec.Client, nil
}

func (c *Registry) load(ctx context.Context, id string) (Record, error) {
	var rec Record
	err := c.store.View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(clientsBucket, id)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rec)
	})
	if err != nil {
		return Record{}, fmt.Errorf("client %s: %w", id, err)
	}
	return rec, nil
}

// List returns every client in id order.
func (c *Registry) List(ctx context.Context) ([]Client, error) {
	var out []Client
	err := c.store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(clientsBucket, "", func(key string, b []byte) error {
			var rec Record
			if err := json.Unmarshal(b, &rec); err != nil {
				return fmt.Errorf("decode client %s: %w", key, err)
			}
			out = append(out, rec.Client)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return out, nil
}

// Update applies p to the client with id and validates the result.
func (c *Registry) Update(ctx context.Context, id string, p Patch) (Client, error) {
	var out Client
	err := c.modify(ctx, id, func(rec *Record) error {
		cl := &rec.Client
		setIf(&cl.GrantTypes, p.GrantTypes)
		setIf(&cl.AuthMethods, p.AuthMethods)
		setIf(&cl.Scopes, p.Scopes)
		setIf(&cl.DefaultScopes, p.DefaultScopes)
		setIf(&cl.Audiences, p.Audiences)
		setIf(&cl.DefaultAudience, p.DefaultAudience)
		setIf(&cl.SigningAlg, p.SigningAlg)
		setIf(&cl.AccessTokenTTL, p.AccessTokenTTL)
		setIf(&cl.ExtraClaims, p.ExtraClaims)
		setIf(&cl.Disabled, p.Disabled)
		setIf(&cl.RefreshIdleTTL, p.RefreshIdleTTL)
		setIf(&cl.RefreshAbsoluteTTL, p.RefreshAbsoluteTTL)
		setIf(&cl.RefreshReuseGrace, p.RefreshReuseGrace)
		setIf(&cl.RefreshTokenCookie, p.RefreshTokenCookie)
		setIf(&cl.Introspect, p.Introspect)
		setIf(&cl.RedirectURIs, p.RedirectURIs)
		setIf(&cl.PostLogoutRedirectURIs, p.PostLogoutRedirectURIs)
		setIf(&cl.FirstParty, p.FirstParty)
		setIf(&cl.ApplicationType, p.ApplicationType)
		setIf(&cl.IDTokenSignedResponseAlg, p.IDTokenSignedResponseAlg)
		setIf(&cl.ClientName, p.ClientName)
		setIf(&cl.RequireSecondFactor, p.RequireSecondFactor)
		// A client has jwks or jwks_uri: setting one replaces the other.
		if p.JWKS != nil && p.JWKSURI == nil && len(*p.JWKS) > 0 {
			cl.JWKSURI = ""
		}
		if p.JWKSURI != nil && p.JWKS == nil && *p.JWKSURI != "" {
			cl.JWKS = nil
		}
		setIf(&cl.JWKS, p.JWKS)
		setIf(&cl.JWKSURI, p.JWKSURI)
		setIf(&cl.AssertionAlgs, p.AssertionAlgs)
		setIf(&cl.ExchangeAudiences, p.ExchangeAudiences)
		setIf(&cl.DPoPBoundAccessTokens, p.DPoPBoundAccessTokens)
		setIf(&cl.Federated, p.Federated)
		setIf(&cl.BackchannelLogoutURI, p.BackchannelLogoutURI)
		setIf(&cl.BackchannelLogoutSessionRequired, p.BackchannelLogoutSessionRequired)
		if p.RequirePKCE != nil {
			cl.RequirePKCE = p.RequirePKCE
		}
		if err := c.validate(cl); err != nil {
			return err
		}
		out = *cl
		return nil
	})
	return out, err
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// RotateSecret gives the client a new secret, returned here only. The old
// secret keeps working for keepPrevious (0: it stops at once).
func (c *Registry) RotateSecret(ctx context.Context, id string, keepPrevious time.Duration) (Client, string, error) {
	if keepPrevious < 0 || keepPrevious > maxSecretOverlap {
		return Client{}, "", &ValidationError{Field: "keep_previous", Problem: "must be between 0 and " + maxSecretOverlap.String()}
	}
	secret, hash := newSecret()
	var out Client
	err := c.modify(ctx, id, func(rec *Record) error {
		rec.PreviousSecretHash, rec.PreviousSecretExpiresAt = nil, time.Time{}
		if keepPrevious > 0 {
			rec.PreviousSecretHash = rec.SecretHash
			rec.PreviousSecretExpiresAt = c.now().UTC().Add(keepPrevious)
		}
		rec.SecretHash = hash
		out = rec.Client
		return nil
	})
	if err != nil {
		return Client{}, "", err
	}
	return out, secret, nil
}

// Delete removes the client; an unknown id is an error wrapping storage.ErrNotFound.
func (c *Registry) Delete(ctx context.Context, id string) error { return c.DeleteWith(ctx, id, nil) }

// modify runs fn on the stored record inside one transaction.
func (c *Registry) modify(ctx context.Context, id string, fn func(*Record) error) error {
	err := c.store.Update(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(clientsBucket, id)
		if err != nil {
			return err
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if err := fn(&rec); err != nil {
			return err
		}
		rec.UpdatedAt = c.now().UTC()
		val, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		return tx.Put(clientsBucket, id, val)
	})
	if err != nil {
		return fmt.Errorf("update client %s: %w", id, err)
	}
	c.refresh(ctx, id)
	return nil
}

// validate checks every field and reports all problems at once.
func (c *Registry) validate(cl *Client) error { return c.validateAs(cl, false) }

// validateAs is validate; external allows the metadata-document URL ids
// of clients that are not stored (PrepareExternal).
func (c *Registry) validateAs(cl *Client, external bool) error {
	var errs []error
	bad := func(field, problem string) { errs = append(errs, &ValidationError{Field: field, Problem: problem}) }
	if !ValidID(cl.ID) && !(external && IsMetadataDocumentID(cl.ID)) {
		bad("client_id", "must be 1 to 128 characters of A-Z a-z 0-9 - . _ ~")
	}
	validateDynamic(cl, bad)
	for _, g := range cl.GrantTypes {
		if !slices.Contains(supportedGrants, g) {
			bad("grant_types", "unsupported grant type "+QuoteValue(g)+" (supported: "+strings.Join(supportedGrants, ", ")+")")
		}
	}
	if slices.Contains(cl.GrantTypes, GrantRefreshToken) && !slices.Contains(cl.GrantTypes, GrantPassword) && !slices.Contains(cl.GrantTypes, GrantAuthorizationCode) && !slices.Contains(cl.GrantTypes, GrantDeviceCode) {
		bad("grant_types", "refresh_token needs a grant that issues refresh tokens (authorization_code, password or "+GrantDeviceCode+")")
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{{"refresh_idle_ttl", cl.RefreshIdleTTL}, {"refresh_absolute_ttl", cl.RefreshAbsoluteTTL}} {
		if d := time.Duration(f.d); d != 0 && (d < time.Minute || d > maxRefreshTTL) {
			bad(f.name, fmt.Sprintf("%s must be 0 (server default) or between 1m and %s", d, maxRefreshTTL))
		}
	}
	if cl.RefreshIdleTTL != 0 && cl.RefreshAbsoluteTTL != 0 && cl.RefreshIdleTTL > cl.RefreshAbsoluteTTL {
		bad("refresh_idle_ttl", "longer than refresh_absolute_ttl")
	}
	if g := time.Duration(cl.RefreshReuseGrace); g < 0 || g > maxRefreshReuseGrace {
		bad("refresh_reuse_grace", fmt.Sprintf("%s must be between 0 and %s", g, maxRefreshReuseGrace))
	}
	if hasDup(cl.GrantTypes) {
		bad("grant_types", "duplicate value")
	}
	if len(cl.AuthMethods) == 0 {
		bad("token_endpoint_auth_methods", "at least one method is required")
	}
	for _, m := range cl.AuthMethods {
		if m != AuthSecretBasic && m != AuthSecretPost && m != AuthNone && m != AuthPrivateKeyJWT {
			bad("token_endpoint_auth_methods", "unsupported method "+QuoteValue(m)+" (supported: "+AuthSecretBasic+", "+AuthSecretPost+", "+AuthPrivateKeyJWT+", "+AuthNone+" for public clients)")
		}
	}
	validateKeyJWT(cl, bad)
	validateFederated(cl, bad)
	c.validateLogin(cl, bad)
	validateBackchannel(cl, bad)
	for _, s := range cl.Scopes {
		if !ValidScopeToken(s) {
			bad("scopes", QuoteValue(s)+" is not a valid scope token (RFC 6749 section 3.3: printable ASCII except space, double quote and backslash)")
		}
	}
	if hasDup(cl.Scopes) {
		bad("scopes", "duplicate value")
	}
	for _, s := range cl.DefaultScopes {
		if !slices.Contains(cl.Scopes, s) {
			bad("default_scopes", QuoteValue(s)+" is not one of the client's scopes")
		}
	}
	if len(cl.Audiences) == 0 {
		bad("audiences", "at least one audience is required")
	}
	for _, a := range cl.Audiences {
		if !validAudience(a) {
			bad("audiences", QuoteValue(a)+" must be 1 to 256 printable characters without spaces")
		}
	}
	if hasDup(cl.Audiences) {
		bad("audiences", "duplicate value")
	}
	exchange := slices.Contains(cl.GrantTypes, GrantTokenExchange)
	switch {
	case exchange && len(cl.ExchangeAudiences) == 0:
		bad("token_exchange_audiences", "the "+GrantTokenExchange+" grant needs at least one audience the client may exchange tokens into")
	case !exchange && len(cl.ExchangeAudiences) > 0:
		bad("token_exchange_audiences", "is only used with the grant type "+GrantTokenExchange)
	case hasDup(cl.ExchangeAudiences):
		bad("token_exchange_audiences", "duplicate value")
	}
	for _, a := range cl.ExchangeAudiences {
		if !validAudience(a) {
			bad("token_exchange_audiences", QuoteValue(a)+" must be 1 to 256 printable characters without spaces")
		}
	}
	if !slices.Contains(cl.Audiences, cl.DefaultAudience) {
		bad("default_audience", QuoteValue(cl.DefaultAudience)+" is not one of the client's audiences")
	}
	if !slices.Contains(c.algs, cl.SigningAlg) {
		bad("signing_alg", QuoteValue(cl.SigningAlg)+" is not a live algorithm (live: "+strings.Join(c.algs, ", ")+")")
	}
	if ttl := time.Duration(cl.AccessTokenTTL); ttl < time.Second || ttl > c.maxTTL {
		bad("access_token_ttl", fmt.Sprintf("%s must be between 1s and the maximum token lifetime %s", ttl, c.maxTTL))
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(cl.ExtraClaims)) { // sorted: a stable error text
		v := cl.ExtraClaims[k]
		if p := ClaimNameProblem(k, false); p != "" {
			bad("extra_claims", p)
			continue
		}
		switch {
		case k == "":
			bad("extra_claims", "empty claim name")
		case !json.Valid(v):
			bad("extra_claims", QuoteValue(k)+" is not valid JSON")
		}
		size += len(k) + len(v)
	}
	if size > 4096 {
		bad("extra_claims", "more than 4096 bytes")
	}
	return errors.Join(errs...)
}

// ValidID reports whether id may be a client id: 1 to 128 characters of
// A-Z a-z 0-9 - . _ ~ (no escaping needed anywhere it goes).
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~') {
			return false
		}
	}
	return true
}

// ValidScopeToken is RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
// It excludes '"' and '\', so a scope never needs JSON escaping.
func ValidScopeToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

func validAudience(a string) bool {
	if a == "" || len(a) > 256 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < 0x21 || a[i] > 0x7e {
			return false
		}
	}
	return true
}

func hasDup(s []string) bool {
	for i := range s {
		if slices.Contains(s[i+1:], s[i]) {
			return true
		}
	}
	return false
}

// newSecret returns a 256-bit random secret and its SHA-256 hash. A secret
// this long needs no slow hash (DESIGN.md, Tokens).
func newSecret() (string, []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	s := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(s))
	return s, h[:]
}

// Entry is a client as the token endpoint needs it, prepared once
// when the cache loads it. It is shared: read it, never change it.
type Entry struct {
	Record Record
	// Extra is the client's extra claims as JSON object members without the
	// braces, ready to splice into the claims ("" when none).
	Extra []byte
	// DefaultScope is DefaultScopes joined with spaces.
	DefaultScope string
	// Basic and Post are the allowed client_secret_basic and
	// client_secret_post; GrantCC, GrantPW and GrantRT the allowed
	// client_credentials, password and refresh_token grants.
	Basic, Post bool
	// KeyJWT is the allowed private_key_jwt; Keys are the client's inline
	// public keys (nil when it registered a jwks_uri).
	KeyJWT  bool
	Keys    []PublicKey
	GrantCC bool
	GrantPW bool
	GrantRT bool
}

func newEntry(rec Record) (*Entry, error) {
	e := &Entry{Record: rec, DefaultScope: strings.Join(rec.DefaultScopes, " ")}
	e.Basic = slices.Contains(rec.AuthMethods, AuthSecretBasic)
	e.Post = slices.Contains(rec.AuthMethods, AuthSecretPost)
	e.KeyJWT = slices.Contains(rec.AuthMethods, AuthPrivateKeyJWT)
	if e.KeyJWT && len(rec.JWKS) > 0 {
		keys, err := ParsePublicKeys(rec.JWKS)
		if err != nil {
			return nil, fmt.Errorf("keys of %s: %w", rec.ID, err)
		}
		e.Keys = keys
	}
	e.GrantCC = slices.Contains(rec.GrantTypes, GrantClientCredentials)
	e.GrantPW = slices.Contains(rec.GrantTypes, GrantPassword)
	e.GrantRT = slices.Contains(rec.GrantTypes, GrantRefreshToken)
	if len(rec.ExtraClaims) > 0 {
		b, err := json.Marshal(rec.ExtraClaims) // sorted keys: stable tokens
		if err != nil {
			return nil, fmt.Errorf("encode extra claims of %s: %w", rec.ID, err)
		}
		e.Extra = bytes.TrimSuffix(bytes.TrimPrefix(b, []byte("{")), []byte("}"))
	}
	return e, nil
}

// Watch loads every client into memory and keeps the copy fresh from
// store.Watch until ctx ends or the store closes. It subscribes before
// loading so no change can fall between the two.
func (c *Registry) Watch(ctx context.Context) error {
	events := c.store.Watch(ctx, clientsBucket)
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(clientsBucket, "", func(key string, b []byte) error {
			var rec Record
			if err := json.Unmarshal(b, &rec); err != nil {
				return fmt.Errorf("decode client %s: %w", key, err)
			}
			e, err := newEntry(rec)
			if err != nil {
				return err
			}
			c.cache.Store(key, e)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load clients: %w", err)
	}
	c.cached = true
	go func() {
		for ev := range events {
			c.refresh(ctx, ev.Key)
		}
	}()
	return nil
}

// refresh reloads one client into the cache from the store. Refreshes run
// one at a time, each reading the latest committed state, so the cache
// ends at the newest value whatever order local writes and watch events
// arrive in.
func (c *Registry) refresh(ctx context.Context, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cached {
		return
	}
	rec, err := c.load(context.WithoutCancel(ctx), id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		c.cache.Delete(id)
		c.unread.Delete(id)
		return
	case err != nil:
		// Fail closed: a client we cannot read cannot authenticate, until
		// Lookup reads it again.
		c.cache.Delete(id)
		c.unread.Store(id, struct{}{})
		c.log.LogAttrs(ctx, slog.LevelWarn, "refresh client cache: read again at its next use", slog.String("client_id", id), slog.String("err", err.Error()))
		return
	}
	c.unread.Delete(id)
	e, err := newEntry(rec)
	if err != nil {
		c.cache.Delete(id)
		c.log.LogAttrs(ctx, slog.LevelError, "refresh client cache", slog.String("client_id", id), slog.String("err", err.Error()))
		return
	}
	c.cache.Store(id, e)
}

// readAgain reads a client whose cache refresh failed, under the refresh
// lock so that it cannot store an older value over a newer refresh's. A
// store error is returned as such (the caller answers 503, and counts no
// failed authentication).
func (c *Registry) readAgain(ctx context.Context, id string) (*Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cache.Load(id); ok { // a refresh got there first
		return v.(*Entry), nil
	}
	rec, err := c.load(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		c.unread.Delete(id)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	e, err := newEntry(rec)
	if err != nil {
		return nil, err
	}
	c.cache.Store(id, e)
	c.unread.Delete(id)
	return e, nil
}

// Lookup returns the prepared client for the token endpoint: a stored
// one, or one built from its metadata document (SetResolver).
func (c *Registry) Lookup(ctx context.Context, id string) (*Entry, error) {
	if e, ok, err := c.resolve(ctx, id); ok {
		return e, err
	}
	if c.cached {
		if v, ok := c.cache.Load(id); ok {
			e := v.(*Entry)
			c.used(e)
			return e, nil
		}
		if _, ok := c.unread.Load(id); ok {
			return c.readAgain(ctx, id)
		}
		return nil, fmt.Errorf("client %s: %w", id, storage.ErrNotFound)
	}
	rec, err := c.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return newEntry(rec)
}
