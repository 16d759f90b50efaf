package authority

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/keys/jwssign"
	"github.com/signet-auth/signet/resource"
)

// maxTokenBody caps the token request body: a client_credentials request
// is a few hundred bytes, and net/http would otherwise read 10 MB of form.
const maxTokenBody = 64 << 10

// bodyPool recycles token request body buffers.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// tokenParams are the request parameters of a token request after the
// RFC 6749 §3.2 checks: no parameter twice, empty means absent.
type tokenParams struct {
	grantType, scope, audience string
	clientID, clientSecret     string
	assertion, assertionType   string // private_key_jwt
	resources                  []string
	username, password         string
	refreshToken               string
	token, tokenTypeHint       string // revocation and introspection
	code, redirectURI          string // authorization_code
	codeVerifier               string
	// dpopJKT is the thumbprint of the request's checked DPoP proof key
	// ("" without a proof): the access token is bound to it.
	dpopJKT    string
	deviceCode string // RFC 8628 device_code
	// form is the whole body, for a grant served by another package
	// (Config.Grants).
	form url.Values
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
	if err := s.canIssue(); err != nil {
		return errStale(err)
	}
	if r.Method != http.MethodPost {
		return &Error{Code: "invalid_request", Description: "the token endpoint accepts only POST", Status: http.StatusMethodNotAllowed, allow: http.MethodPost}
	}
	p, err := readTokenParams(r)
	if err != nil {
		return err
	}
	if p.grantType == "" {
		return InvalidRequest("grant_type is required")
	}
	ext := s.cfg.Grants[p.grantType]
	if ext == nil && (!clients.SupportedGrant(p.grantType) || clients.ExtensionGrant(p.grantType)) {
		return &Error{Code: "unsupported_grant_type", Description: "grant_type must be one of " + strings.Join(grantTypes(s.cfg), ", "), Status: http.StatusBadRequest}
	}
	ent, err := s.authenticate(c, r, &p)
	if err != nil {
		return err
	}
	// Before the DPoP check: a browser client must be able to read a
	// use_dpop_nonce answer and its DPoP-Nonce header to try again.
	s.allowBrowserOrigin(c, ent)
	if p.dpopJKT, err = s.tokenDPoP(c); err != nil {
		return err
	}
	if p.dpopJKT == "" && ent.Record.DPoPBoundAccessTokens {
		return &Error{Code: "invalid_dpop_proof", Description: "this client must send a DPoP proof (dpop_bound_access_tokens)", Status: http.StatusBadRequest}
	}
	for _, v := range p.resources { // every grant, extension grants too (RFC 8707 §2)
		if err := resource.Check(v); err != nil {
			return targetError(err)
		}
	}
	if ext != nil {
		return s.extensionGrant(c, ext, ent, &p)
	}
	switch p.grantType {
	case clients.GrantPassword:
		return s.passwordGrant(c, ent, &p)
	case clients.GrantRefreshToken:
		return s.refreshGrant(c, ent, &p)
	case clients.GrantAuthorizationCode:
		return s.codeGrant(c, ent, &p)
	case clients.GrantDeviceCode:
		return s.deviceGrant(c, ent, &p)
	}
	if !ent.GrantCC {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the client_credentials grant", Status: http.StatusBadRequest}
	}
	scope, err := grantScope(ent, p.scope)
	if err != nil {
		return err
	}
	aud, err := grantAudience(ent, &p)
	if err != nil {
		return err
	}
	tok, ttl, err := s.issue(ent, scope, aud, p.dpopJKT)
	if err != nil {
		return err
	}
	if am, ok := s.cfg.TokenMetrics.(AdminTokenMetrics); ok && slices.Contains(aud, AdminAudience) {
		am.IssuedAdmin(ent.Record.SigningAlg)
	} else if s.cfg.TokenMetrics != nil {
		s.cfg.TokenMetrics.Issued(clients.GrantClientCredentials, ent.Record.SigningAlg, ent.Record.ID)
	}
	if p.dpopJKT != "" {
		return writeTokenResponseType(c, "DPoP", tok, ttl, scope, "")
	}
	return writeTokenResponse(c, tok, ttl, scope, "")
}

// readTokenParams enforces the transport rules of RFC 6749 §3.2: form
// body only, bounded, nothing in the URL, no parameter twice.
func readTokenParams(r *http.Request) (tokenParams, error) {
	var p tokenParams
	if r.URL.RawQuery != "" {
		return p, InvalidRequest("parameters must be sent in the request body, not in the URL")
	}
	// The exact form every client sends needs no parsing (ParseMediaType
	// allocates its parameter map).
	if ct := r.Header.Get(echo.HeaderContentType); ct != echo.MIMEApplicationForm {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationForm {
			return p, InvalidRequest("Content-Type must be application/x-www-form-urlencoded")
		}
	}
	if r.ContentLength > maxTokenBody {
		return p, InvalidRequest("request body is larger than 64 KiB")
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodyPool.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxTokenBody+1)); err != nil {
		return p, InvalidRequest("could not read the request body")
	}
	if buf.Len() > maxTokenBody {
		return p, InvalidRequest("request body is larger than 64 KiB")
	}
	form, err := url.ParseQuery(buf.String())
	if err != nil {
		return p, InvalidRequest("malformed application/x-www-form-urlencoded body")
	}
	for k, v := range form {
		if len(v) > 1 && k != "resource" { // RFC 8707 §2: resource may repeat
			if isTokenParam(k) {
				return p, InvalidRequest("parameter " + k + " is repeated")
			}
			return p, InvalidRequest("a parameter is repeated")
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
	p.assertion, p.assertionType = get("client_assertion"), get("client_assertion_type")
	p.username, p.password, p.refreshToken = get("username"), get("password"), get("refresh_token")
	p.token, p.tokenTypeHint = get("token"), get("token_type_hint")
	p.code, p.redirectURI, p.codeVerifier = get("code"), get("redirect_uri"), get("code_verifier")
	p.deviceCode = get("device_code")
	p.form = form
	for _, v := range form["resource"] {
		if v != "" && !slices.Contains(p.resources, v) {
			p.resources = append(p.resources, v)
		}
	}
	return p, nil
}

func isTokenParam(k string) bool {
	switch k {
	case "grant_type", "scope", "audience", "client_id", "client_secret", "username", "password", "refresh_token", "token", "token_type_hint", "code", "redirect_uri", "code_verifier", "client_assertion", "client_assertion_type", "device_code":
		return true
	}
	return false
}

// grantScope is ent.GrantScope with its RFC 6749 §5.2 answer.
func grantScope(ent *clients.Entry, requested string) (string, error) {
	scope, err := ent.GrantScope(requested)
	if err != nil {
		return "", errInvalidScope(err.Error())
	}
	return scope, nil
}

// grantAudience is the audience a new grant gives ent (resource.Grant).
func grantAudience(ent *clients.Entry, p *tokenParams) ([]string, error) {
	aud, err := resource.Grant(ent.Record.Audiences, ent.Record.DefaultAudience, p.audience, p.resources)
	if err != nil {
		return nil, targetError(err)
	}
	return aud, nil
}

// targetError is a refusal of package resource as the RFC 6749 §5.2 answer.
func targetError(err error) *Error {
	if re, ok := err.(*resource.Error); ok {
		return &Error{Code: re.Code, Description: re.Description, Status: http.StatusBadRequest}
	}
	return ServerError(err)
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
	// Cnf binds the token to the client's DPoP key (RFC 9449 §6.1).
	Cnf *confirmation `json:"cnf,omitempty"`
	// Act is read only (readClaims): the RFC 8693 delegation chain of an
	// exchanged token, written by its grant among the extra claims.
	Act json.RawMessage `json:"-"`
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

// appendJSON appends c as json.Marshal encodes it, byte for byte, without
// reflection: this runs for every token issued.
func (c *accessClaims) appendJSON(b []byte) []byte {
	b = append(b, `{"iss":`...)
	b = appendJSONString(b, c.Iss)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, c.Sub)
	b = append(b, `,"aud":`...)
	switch {
	case c.Aud == nil:
		b = append(b, "null"...)
	case len(c.Aud) == 0:
		b = append(b, "[]"...)
	case len(c.Aud) == 1:
		b = appendJSONString(b, c.Aud[0])
	default:
		for i, a := range c.Aud {
			if i == 0 {
				b = append(b, '[')
			} else {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Exp, 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, c.Nbf, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.Iat, 10)
	b = append(b, `,"jti":`...)
	b = appendJSONString(b, c.Jti)
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, c.ClientID)
	if c.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, c.Scope)
	}
	if c.Instance != "" {
		b = append(b, `,"client_instance":`...)
		b = appendJSONString(b, c.Instance)
	}
	if c.Cnf != nil {
		b = append(b, `,"cnf":{"jkt":`...)
		b = appendJSONString(b, c.Cnf.JKT)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONString appends s as json.Marshal encodes a string. Printable
// ASCII other than the characters encoding/json escapes (quote, backslash
// and its HTML-safe <, >, &) is copied; anything else goes through
// json.Marshal, so the output is the same in every case.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// keyFor is the active key of the client's algorithm. A client whose
// algorithm is no longer live (keys.algorithms changed after it was made)
// is a configuration mistake the client cannot fix: it gets a clear 400,
// and the log says what the operator must change.
func (s *Server) keyFor(ent *clients.Entry) (*jwssign.Key, error) {
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
	return nil, ServerError(fmt.Errorf("issue token for %s: %w", ent.Record.ID, err))
}

// issue builds and signs an access token for ent (client_credentials: the
// client is the subject).
func (s *Server) issue(ent *clients.Entry, scope string, aud []string, jkt string) (string, time.Duration, error) {
	key, err := s.keyFor(ent)
	if err != nil {
		return "", 0, err
	}
	at, err := s.sign(key, ent, accessSpec{sub: ent.Record.ID, scope: scope, aud: aud, jti: newJTI(), iat: s.cfg.Now().Unix(), jkt: jkt})
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
	// jkt is the thumbprint of the DPoP key the token is bound to; "" for
	// a bearer token.
	jkt string
	// expires caps exp (unix seconds); 0: the client's lifetime.
	expires int64
}

type signedAccess struct {
	token string
	ttl   time.Duration
	exp   int64
	bound bool // cnf.jkt: a DPoP token
}

// tokenType is the token_type of the response (RFC 9449 §5).
func (a signedAccess) tokenType() string {
	if a.bound {
		return "DPoP"
	}
	return "Bearer"
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
func (s *Server) sign(key *jwssign.Key, ent *clients.Entry, sp accessSpec) (signedAccess, error) {
	ttl := s.accessTTL(ent)
	claims := accessClaims{
		Iss: s.cfg.Issuer, Sub: sp.sub, Aud: sp.aud,
		Exp: sp.iat + int64(ttl/time.Second), Nbf: sp.iat, Iat: sp.iat,
		Jti: sp.jti, ClientID: ent.Record.ID, Scope: sp.scope, Instance: ent.Record.Instance,
	}
	if sp.expires != 0 && sp.expires < claims.Exp {
		claims.Exp = sp.expires
		ttl = time.Duration(claims.Exp-sp.iat) * time.Second
	}
	if sp.jkt != "" {
		claims.Cnf = &confirmation{JKT: sp.jkt}
	}
	var buf [512]byte
	payload := claims.appendJSON(buf[:0])
	extra := ent.Extra
	var err error
	if sp.user != nil {
		extra, err = mergeClaims(ent.Record.ExtraClaims, sp.user)
		if err != nil {
			return signedAccess{}, ServerError(fmt.Errorf("encode claims: %w", err))
		}
	}
	if len(extra) > 0 {
		payload = append(payload[:len(payload)-1], ',')
		payload = append(payload, extra...)
		payload = append(payload, '}')
	}
	tok, err := key.Sign(payload)
	if err != nil {
		return signedAccess{}, errSigning(fmt.Errorf("sign token for %s: %w", ent.Record.ID, err))
	}
	return signedAccess{token: tok, ttl: ttl, exp: claims.Exp, bound: sp.jkt != ""}, nil
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
	return writeTokenResponseType(c, "Bearer", tok, ttl, scope, refresh)
}

// writeTokenResponseType is writeTokenResponse with the token_type (DPoP
// for a token bound to a DPoP key, RFC 9449 §5).
func writeTokenResponseType(c echo.Context, tokenType, tok string, ttl time.Duration, scope, refresh string) error {
	b := make([]byte, 0, len(tok)+len(scope)+len(refresh)+128)
	b = append(b, `{"access_token":"`...)
	b = append(b, tok...)
	b = append(b, `","token_type":"`...)
	b = append(b, tokenType...)
	b = append(b, `","expires_in":`...)
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
	h["Content-Type"] = jsonType // c.JSONBlob would allocate it per token
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// Header values shared by every token response; net/http does not modify them.
var (
	noStore  = []string{"no-store"}
	noCache  = []string{"no-cache"}
	jsonType = []string{echo.MIMEApplicationJSON}
)

// keyCache prepares each active key once: converting a JWK to a raw key
// and encoding the header per token would cost more than an Ed25519
// signature. The Signer stays the source of truth; a new kid from it
// replaces the prepared key.
type keyCache struct {
	src Signer
	mu  sync.Mutex
	m   atomic.Pointer[map[string]*jwssign.Key]
}

func (kc *keyCache) get(alg string) (*jwssign.Key, error) {
	jk, err := kc.src.SigningKey(alg)
	if err != nil {
		return nil, err
	}
	kid := jk.KeyID()
	if m := kc.m.Load(); m != nil {
		if k := (*m)[alg]; k != nil && k.KID() == kid {
			return k, nil
		}
	}
	k, err := jwssign.Prepare(alg, "at+jwt", jk)
	if err != nil {
		return nil, err
	}
	kc.mu.Lock()
	defer kc.mu.Unlock()
	next := map[string]*jwssign.Key{}
	if m := kc.m.Load(); m != nil {
		for a, v := range *m {
			next[a] = v
		}
	}
	next[alg] = k
	kc.m.Store(&next)
	return k, nil
}
