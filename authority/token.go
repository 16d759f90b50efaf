package authority

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
)

// maxTokenBody caps the token request body: a client_credentials request
// is a few hundred bytes, and net/http would otherwise read 10 MB of form.
const maxTokenBody = 64 << 10

// dummyHash is compared against when the client is unknown, so that an
// unknown client id costs the same as a wrong secret.
var dummyHash = sha256.Sum256([]byte("signet: no such client"))

// bodyPool recycles token request body buffers.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// tokenParams are the request parameters of a token request after the
// RFC 6749 §3.2 checks: no parameter twice, empty means absent.
type tokenParams struct {
	grantType, scope, audience string
	clientID, clientSecret     string
	resources                  []string
	username, password         string
	refreshToken               string
	token, tokenTypeHint       string // revocation and introspection
	code, redirectURI          string // authorization_code
	codeVerifier               string
}

// token is POST /oauth2/token (RFC 6749 §4.4 client_credentials).
func (s *Server) token(c echo.Context) error {
	m := s.cfg.TokenMetrics
	if m == nil {
		return s.tokenRequest(c)
	}
	start := time.Now() // real time, not the injected clock: this is latency
	err := s.tokenRequest(c)
	var oe *Error
	switch {
	case err == nil:
	case errors.As(err, &oe):
		m.Failed(oe.Code)
	default:
		m.Failed("server_error")
	}
	m.Observe(time.Since(start))
	return err
}

func (s *Server) tokenRequest(c echo.Context) error {
	r := c.Request()
	if s.cfg.CanIssue != nil && s.cfg.CanIssue() != nil {
		return &Error{Code: "temporarily_unavailable", Description: "this replica has lost its store; retry on another replica or later", Status: http.StatusServiceUnavailable, retryAfter: 1}
	}
	if r.Method != http.MethodPost {
		return &Error{Code: "invalid_request", Description: "the token endpoint accepts only POST", Status: http.StatusMethodNotAllowed, allow: http.MethodPost}
	}
	p, err := readTokenParams(r)
	if err != nil {
		return err
	}
	if p.grantType == "" {
		return errInvalidRequest("grant_type is required")
	}
	if !clients.SupportedGrant(p.grantType) {
		return &Error{Code: "unsupported_grant_type", Description: "grant_type must be authorization_code, client_credentials, password or refresh_token", Status: http.StatusBadRequest}
	}
	ent, err := s.authenticate(c, r, &p)
	if err != nil {
		return err
	}
	s.allowBrowserOrigin(c, ent)
	switch p.grantType {
	case clients.GrantPassword:
		return s.passwordGrant(c, ent, &p)
	case clients.GrantRefreshToken:
		return s.refreshGrant(c, ent, &p)
	case clients.GrantAuthorizationCode:
		return s.codeGrant(c, ent, &p)
	}
	if !ent.GrantCC {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the client_credentials grant", Status: http.StatusBadRequest}
	}
	scope, err := grantScope(ent, p.scope)
	if err != nil {
		return err
	}
	aud, err := grantAudience(ent, p.audience, p.resources)
	if err != nil {
		return err
	}
	tok, ttl, err := s.issue(ent, scope, aud)
	if err != nil {
		return err
	}
	if am, ok := s.cfg.TokenMetrics.(AdminTokenMetrics); ok && slices.Contains(aud, AdminAudience) {
		am.IssuedAdmin(ent.Record.SigningAlg)
	} else if s.cfg.TokenMetrics != nil {
		s.cfg.TokenMetrics.Issued(clients.GrantClientCredentials, ent.Record.SigningAlg, ent.Record.ID)
	}
	return writeTokenResponse(c, tok, ttl, scope, "")
}

// readTokenParams enforces the transport rules of RFC 6749 §3.2: form
// body only, bounded, nothing in the URL, no parameter twice.
func readTokenParams(r *http.Request) (tokenParams, error) {
	var p tokenParams
	if r.URL.RawQuery != "" {
		return p, errInvalidRequest("parameters must be sent in the request body, not in the URL")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationForm {
		return p, errInvalidRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	if r.ContentLength > maxTokenBody {
		return p, errInvalidRequest("request body is larger than 64 KiB")
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodyPool.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxTokenBody+1)); err != nil {
		return p, errInvalidRequest("could not read the request body")
	}
	if buf.Len() > maxTokenBody {
		return p, errInvalidRequest("request body is larger than 64 KiB")
	}
	form, err := url.ParseQuery(buf.String())
	if err != nil {
		return p, errInvalidRequest("malformed application/x-www-form-urlencoded body")
	}
	for k, v := range form {
		if len(v) > 1 && k != "resource" { // RFC 8707 §2: resource may repeat
			if isTokenParam(k) {
				return p, errInvalidRequest("parameter " + k + " is repeated")
			}
			return p, errInvalidRequest("a parameter is repeated")
		}
	}
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	p.grantType, p.scope, p.audience = get("grant_type"), get("scope"), get("audience")
	p.clientID, p.clientSecret = get("client_id"), get("client_secret")
	p.username, p.password, p.refreshToken = get("username"), get("password"), get("refresh_token")
	p.token, p.tokenTypeHint = get("token"), get("token_type_hint")
	p.code, p.redirectURI, p.codeVerifier = get("code"), get("redirect_uri"), get("code_verifier")
	for _, v := range form["resource"] {
		if v != "" && !slices.Contains(p.resources, v) {
			p.resources = append(p.resources, v)
		}
	}
	return p, nil
}

func isTokenParam(k string) bool {
	switch k {
	case "grant_type", "scope", "audience", "client_id", "client_secret", "username", "password", "refresh_token", "token", "token_type_hint", "code", "redirect_uri", "code_verifier":
		return true
	}
	return false
}

// authenticate identifies the client by client_secret_basic or
// client_secret_post (exactly one), with the failed-auth rate limit. Every
// failure that could help guess a secret has the same answer, and an
// unknown client costs the same hash and compare as a wrong secret.
func (s *Server) authenticate(c echo.Context, r *http.Request, p *tokenParams) (*clients.Entry, error) {
	var id, secret string
	basic := false
	h, herr := authorizationField(r)
	if herr != nil {
		return nil, herr
	}
	if h != "" {
		basic = true
		scheme, cred, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Basic") {
			return nil, errInvalidClient("unsupported Authorization scheme: use HTTP Basic or client_secret_post", true, nil)
		}
		if p.clientSecret != "" {
			return nil, errInvalidRequest("client authenticated with both HTTP Basic and client_secret_post: use one method")
		}
		var ok bool
		if id, secret, ok = parseBasic(cred); !ok {
			return nil, errInvalidClient("malformed HTTP Basic credentials (RFC 6749 section 2.3.1)", true, nil)
		}
		if p.clientID != "" && p.clientID != id {
			return nil, errInvalidRequest("client_id in the body does not match the Authorization header")
		}
	} else {
		id, secret = p.clientID, p.clientSecret
		if id == "" {
			return nil, errInvalidClient("client authentication required (HTTP Basic or client_secret_post)", true, nil)
		}
	}

	if !basic && secret == "" {
		if ent := s.publicClient(r.Context(), id); ent != nil {
			return ent, nil // nothing to guess, so nothing to rate-limit
		}
	}
	now := s.cfg.Now()
	ip := c.RealIP()
	tooMany := func(wait time.Duration) error {
		return &Error{Code: "temporarily_unavailable", Description: "too many failed authentication attempts; retry later", Status: http.StatusTooManyRequests, retryAfter: int((wait + time.Second - 1) / time.Second)}
	}
	if wait := s.limits.ip.retryAfter(ip, now); wait > 0 {
		return nil, tooMany(wait)
	}
	// The per-client limit only answers wrong secrets: anyone who knows a
	// client id could otherwise lock that client out from anywhere. The
	// holder of the right secret always gets through (its own address's
	// limit aside); a guesser past the limit learns nothing but 429.
	clientWait := s.limits.client.retryAfter(id, now)
	fail := func(desc string, err error) (*clients.Entry, error) {
		if clientWait > 0 {
			return nil, tooMany(clientWait)
		}
		if clients.ValidID(id) { // no client has another id: bounded keys only
			s.limits.client.fail(id, now)
		}
		s.limits.ip.fail(ip, now)
		return nil, errInvalidClient(desc, basic, err)
	}

	ent, err := s.clients.Lookup(r.Context(), id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, errServer(fmt.Errorf("authenticate client: %w", err))
	}
	sum := sha256.Sum256([]byte(secret))
	if ent == nil {
		subtle.ConstantTimeCompare(sum[:], dummyHash[:])
		return fail("client authentication failed", err)
	}
	ok := subtle.ConstantTimeCompare(sum[:], ent.Record.SecretHash) == 1
	if !ok && len(ent.Record.PreviousSecretHash) > 0 && now.Before(ent.Record.PreviousSecretExpiresAt) {
		ok = subtle.ConstantTimeCompare(sum[:], ent.Record.PreviousSecretHash) == 1
	}
	if !ok || secret == "" {
		return fail("client authentication failed", nil)
	}
	// Past this point the caller holds the secret: precise answers help it
	// and tell a stranger nothing.
	if ent.Record.Disabled {
		return fail("client is disabled", nil)
	}
	if basic && !ent.Basic {
		return fail("client is not registered for client_secret_basic", nil)
	}
	if !basic && !ent.Post {
		return fail("client is not registered for client_secret_post", nil)
	}
	return ent, nil
}

// parseBasic decodes HTTP Basic credentials whose id and secret are each
// application/x-www-form-urlencoded (RFC 6749 §2.3.1).
func parseBasic(cred string) (id, secret string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	u, pw, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	if id, err = url.QueryUnescape(u); err != nil || id == "" {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(pw); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// grantScope checks the requested scope against the client's and returns
// the granted scope string; no scope asked means the default scopes.
func grantScope(ent *clients.Entry, requested string) (string, error) {
	if requested == "" {
		return ent.DefaultScope, nil
	}
	toks, perr := parseScope(requested)
	if perr != nil {
		return "", perr
	}
	for _, t := range toks {
		if !slices.Contains(ent.Record.Scopes, t) {
			return "", errInvalidScope("scope " + t + " is not allowed for this client")
		}
	}
	return strings.Join(toks, " "), nil
}

// grantAudience checks the audience (or RFC 8707 resources) against the
// client's; none asked means the default audience.
func grantAudience(ent *clients.Entry, audience string, resources []string) ([]string, error) {
	if audience != "" && len(resources) > 0 {
		return nil, errInvalidRequest("use audience or resource, not both")
	}
	if audience != "" {
		resources = []string{audience}
	}
	if len(resources) == 0 {
		return []string{ent.Record.DefaultAudience}, nil
	}
	for _, a := range resources {
		if !slices.Contains(ent.Record.Audiences, a) {
			return nil, errInvalidTarget("the requested audience is not allowed for this client")
		}
	}
	return resources, nil
}

// accessClaims are the RFC 9068 §2.2 claims, in the order they appear.
type accessClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      audience `json:"aud"`
	Exp      int64    `json:"exp"`
	Nbf      int64    `json:"nbf"`
	Iat      int64    `json:"iat"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	// Instance is the client instance (claimClientInstance); absent for
	// clients older than instances.
	Instance string `json:"client_instance,omitempty"`
}

// audience is a single string when there is one value (the common form
// verifiers expect) and an array otherwise (RFC 7519 §4.1.3).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// keyFor is the active key of the client's algorithm. A client whose
// algorithm is no longer live (keys.algorithms changed after it was made)
// is a configuration mistake the client cannot fix: it gets a clear 400,
// and the log says what the operator must change.
func (s *Server) keyFor(ent *clients.Entry) (*signingKey, error) {
	key, err := s.keys.get(ent.Record.SigningAlg)
	if err == nil {
		return key, nil
	}
	if !slices.Contains(s.cfg.Algorithms, ent.Record.SigningAlg) {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "client signs with an algorithm that is not live",
			slog.String("client_id", ent.Record.ID), slog.String("alg", ent.Record.SigningAlg), slog.Any("live", s.cfg.Algorithms))
		return nil, &Error{Code: "unauthorized_client", Status: http.StatusBadRequest,
			Description: fmt.Sprintf("this client signs with %s, which this server no longer has a key for; an operator must change the client's signing algorithm", ent.Record.SigningAlg)}
	}
	return nil, errServer(fmt.Errorf("issue token for %s: %w", ent.Record.ID, err))
}

// issue builds and signs an access token for ent (client_credentials: the
// client is the subject).
func (s *Server) issue(ent *clients.Entry, scope string, aud []string) (string, time.Duration, error) {
	key, err := s.keyFor(ent)
	if err != nil {
		return "", 0, err
	}
	at, err := s.sign(key, ent, accessSpec{sub: ent.Record.ID, scope: scope, aud: aud, jti: newJTI(), iat: s.cfg.Now().Unix()})
	if err != nil {
		return "", 0, err
	}
	return at.token, at.ttl, nil
}

// accessSpec is what varies between the access tokens of one client.
type accessSpec struct {
	sub, scope, jti string
	aud             []string
	iat             int64
	// user holds the user's claims as JSON object members (no braces);
	// nil for client tokens.
	user []byte
}

type signedAccess struct {
	token string
	ttl   time.Duration
	exp   int64
}

func newJTI() string {
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(jti[:])
}

// accessTTL is the access-token lifetime of ent.
func (s *Server) accessTTL(ent *clients.Entry) time.Duration {
	return min(time.Duration(ent.Record.AccessTokenTTL), s.cfg.MaxTokenTTL)
}

// sign builds the claims of sp for ent and signs them with key.
func (s *Server) sign(key *signingKey, ent *clients.Entry, sp accessSpec) (signedAccess, error) {
	ttl := s.accessTTL(ent)
	claims := accessClaims{
		Iss: s.cfg.Issuer, Sub: sp.sub, Aud: sp.aud,
		Exp: sp.iat + int64(ttl/time.Second), Nbf: sp.iat, Iat: sp.iat,
		Jti: sp.jti, ClientID: ent.Record.ID, Scope: sp.scope, Instance: ent.Record.Instance,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return signedAccess{}, errServer(fmt.Errorf("encode claims: %w", err))
	}
	extra := ent.Extra
	if sp.user != nil {
		extra, err = mergeClaims(ent.Record.ExtraClaims, sp.user)
		if err != nil {
			return signedAccess{}, errServer(fmt.Errorf("encode claims: %w", err))
		}
	}
	if len(extra) > 0 {
		payload = append(payload[:len(payload)-1], ',')
		payload = append(payload, extra...)
		payload = append(payload, '}')
	}
	tok, err := key.sign(payload)
	if err != nil {
		return signedAccess{}, errSigning(fmt.Errorf("sign token for %s: %w", ent.Record.ID, err))
	}
	return signedAccess{token: tok, ttl: ttl, exp: claims.Exp}, nil
}

// mergeClaims puts the user's claims over the client's extra claims and
// returns object members without braces.
func mergeClaims(client map[string]json.RawMessage, user []byte) ([]byte, error) {
	if len(client) == 0 {
		return user, nil
	}
	if len(user) == 0 {
		b, err := json.Marshal(client)
		if err != nil {
			return nil, err
		}
		return b[1 : len(b)-1], nil
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(append(append([]byte{'{'}, user...), '}'), &m); err != nil {
		return nil, err
	}
	for k, v := range client {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return b[1 : len(b)-1], nil
}

// writeTokenResponse writes the RFC 6749 §5.1 response. Every value in it
// is base64url, a number or a validated scope, so no escaping is needed.
func writeTokenResponse(c echo.Context, tok string, ttl time.Duration, scope, refresh string) error {
	b := make([]byte, 0, len(tok)+len(scope)+len(refresh)+128)
	b = append(b, `{"access_token":"`...)
	b = append(b, tok...)
	b = append(b, `","token_type":"Bearer","expires_in":`...)
	b = strconv.AppendInt(b, int64(ttl/time.Second), 10)
	if scope != "" {
		b = append(b, `,"scope":"`...)
		b = append(b, scope...)
		b = append(b, '"')
	}
	if refresh != "" {
		b = append(b, `,"refresh_token":"`...)
		b = append(b, refresh...)
		b = append(b, '"')
	}
	b = append(b, '}')
	h := c.Response().Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	return c.JSONBlob(http.StatusOK, b)
}

// Header values shared by every token response; net/http does not modify them.
var (
	noStore = []string{"no-store"}
	noCache = []string{"no-cache"}
)

// signingKey is an active key prepared for the hot path: the raw private
// key, jwx's signer for its algorithm and the encoded JOSE header.
type signingKey struct {
	kid    string
	raw    any
	signer jws.Signer
	header string // base64url(header) + "."
}

func (k *signingKey) sign(payload []byte) (string, error) {
	n := len(k.header) + base64.RawURLEncoding.EncodedLen(len(payload))
	in := make([]byte, n, n+1+base64.RawURLEncoding.EncodedLen(512))
	copy(in, k.header)
	base64.RawURLEncoding.Encode(in[len(k.header):], payload)
	sig, err := k.signer.Sign(in, k.raw)
	if err != nil {
		return "", err
	}
	out := append(in, '.')
	out = base64.RawURLEncoding.AppendEncode(out, sig)
	return string(out), nil
}

// keyCache prepares each active key once: converting a JWK to a raw key
// and encoding the header per token would cost more than an Ed25519
// signature. The Signer stays the source of truth; a new kid from it
// replaces the prepared key.
type keyCache struct {
	src Signer
	mu  sync.Mutex
	m   atomic.Pointer[map[string]*signingKey]
}

func (kc *keyCache) get(alg string) (*signingKey, error) {
	jk, err := kc.src.SigningKey(alg)
	if err != nil {
		return nil, err
	}
	kid := jk.KeyID()
	if m := kc.m.Load(); m != nil {
		if k := (*m)[alg]; k != nil && k.kid == kid {
			return k, nil
		}
	}
	k, err := prepareKey(alg, jk)
	if err != nil {
		return nil, err
	}
	kc.mu.Lock()
	defer kc.mu.Unlock()
	next := map[string]*signingKey{}
	if m := kc.m.Load(); m != nil {
		for a, v := range *m {
			next[a] = v
		}
	}
	next[alg] = k
	kc.m.Store(&next)
	return k, nil
}

func prepareKey(alg string, jk jwk.Key) (*signingKey, error) {
	if got := jk.Algorithm().String(); got != alg {
		return nil, fmt.Errorf("signing key %s has alg %q, want %q", jk.KeyID(), got, alg)
	}
	if jk.KeyID() == "" {
		return nil, fmt.Errorf("signing key for %s has no kid", alg)
	}
	var raw any
	if err := jk.Raw(&raw); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", jk.KeyID(), err)
	}
	// jwx's Raw builds an rsa.PrivateKey without crypto/rsa's precomputed
	// form, which crypto/rsa would then rebuild and re-check on every
	// signature. Build it once here; Validate reports a key it cannot build.
	if rk, ok := raw.(*rsa.PrivateKey); ok {
		rk.Precompute()
		if err := rk.Validate(); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", jk.KeyID(), err)
		}
	}
	signer, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
	if err != nil {
		return nil, fmt.Errorf("signer for %s: %w", alg, err)
	}
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, jk.KeyID(), "at+jwt"})
	if err != nil {
		return nil, err
	}
	return &signingKey{kid: jk.KeyID(), raw: raw, signer: signer, header: base64.RawURLEncoding.EncodeToString(hdr) + "."}, nil
}
