package authority

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
)

// The admin API accepts access tokens from this Signet with this scope and
// this audience only: an ordinary access token, even one with the scope,
// is not an admin credential (RFC 8725 §3.9).
const (
	AdminScope    = clients.AdminScope
	AdminAudience = "signet-admin"
)

const (
	maxBearerLen = 4096
	// adminLeeway is the clock skew allowed on nbf and iat of a bearer
	// token and on a token at revocation.
	adminLeeway = 30 * time.Second
)

// Bearer is what a verified bearer token says of who presents it.
type Bearer struct {
	ClientID string
	Sub      string
	Scope    string // space-separated, as Signet wrote it (SplitScope)
}

// VerifyBearer is verifyBearer for a handler outside this package (the
// admin API): the token must be a live access token of this Signet for
// audience; refusals carry the challenge realm.
func (s *Server) VerifyBearer(r *http.Request, audience, realm string) (Bearer, error) {
	at, err := s.verifyBearer(r, bearerCheck{audience: audience, realm: realm})
	if err != nil {
		return Bearer{}, err
	}
	return Bearer{ClientID: at.ClientID, Sub: at.Sub, Scope: at.Scope}, nil
}

// TokenKind is which of Signet's tokens VerifyToken expects.
type TokenKind int

const (
	AccessToken TokenKind = iota
	IDToken
)

// Token is a live token of this Signet, as VerifyToken read it.
type Token struct {
	Sub string
	// ClientID is the client the token was issued to (an ID token's aud).
	ClientID string
	Aud      []string
	Scope    string // "" for an ID token
	Exp      time.Time
	JKT      string          // cnf.jkt of a DPoP-bound access token
	Act      json.RawMessage // the RFC 8693 act claim; nil when absent
}

// ErrTokenRefused is wrapped by VerifyToken's refusals, which say why.
var ErrTokenRefused = errors.New("token refused")

// VerifyToken checks that tok is a live access or ID token of this
// Signet, for a package outside this one (token exchange), exactly as
// Signet checks its own: the strict parser, a published key with the
// algorithm taken from the key, typ, this issuer, exp, nbf and iat; and
// not revoked, not issued before its subject's cutoff (a logout), its
// client the same instance and enabled. Audience and DPoP binding are the
// caller's to judge. Any error not wrapping ErrTokenRefused is a store
// failure.
func (s *Server) VerifyToken(ctx context.Context, tok string, kind TokenKind) (Token, error) {
	var at *accessClaims
	var why string
	var err error
	if kind == IDToken {
		at, why, err = s.liveIDToken(ctx, tok)
	} else {
		at, why, err = s.liveAccessToken(ctx, tok)
	}
	if err != nil || why != "" {
		if err == nil {
			err = fmt.Errorf("%w: %s", ErrTokenRefused, why)
		}
		return Token{}, err
	}
	t := Token{Sub: at.Sub, ClientID: at.ClientID, Aud: at.Aud, Scope: at.Scope, Exp: time.Unix(at.Exp, 0), Act: at.Act}
	if at.Cnf != nil {
		t.JKT = at.Cnf.JKT
	}
	return t, nil
}

// bearerCheck is what an endpoint asks of a bearer token beyond being a
// live access token of this Signet.
type bearerCheck struct {
	// audience must be one of the token's aud values (RFC 8725 §3.9).
	audience string
	// realm is the WWW-Authenticate challenge of refusals, e.g.
	// `Bearer realm="signet-admin"`.
	realm string
	// dpop is the request when it presented the token with the DPoP
	// scheme: its proof must check (checkResourceProof). Nil: the Bearer
	// scheme, where a token bound to a key is refused.
	dpop *http.Request
}

// verifyBearer is the one check of a Signet-issued bearer token, for every
// endpoint that accepts one (the admin API; userinfo). The token must be a
// compact JWS signed by a key this Signet publishes, with the algorithm
// taken from the key, typ at+jwt, this issuer, the wanted audience, and
// within exp/nbf/iat; and it must still be live here (tokenDead): its jti
// not revoked, its iat not before its subject's cutoff, its client still
// the instance it was issued to (clients/instance.go) and enabled. Refusals are
// *Error (401, or 400 for a repeated Authorization field); store failures
// are 500. An expired token is refused without leeway: Signet's own clock
// issued it.
func (s *Server) verifyBearer(r *http.Request, want bearerCheck) (*accessClaims, error) {
	h, herr := authorizationField(r)
	if herr != nil {
		herr.bearer = want.realm + `, error="invalid_request"`
		return nil, herr
	}
	if h == "" {
		return nil, &Error{Code: "unauthorized", Description: "bearer token required", Status: http.StatusUnauthorized, bearer: want.realm}
	}
	invalid := func(desc string) (*accessClaims, error) {
		return nil, &Error{Code: "invalid_token", Description: desc, Status: http.StatusUnauthorized, bearer: want.realm + `, error="invalid_token"`}
	}
	scheme, tok, _ := strings.Cut(h, " ")
	switch {
	case s.dpopScheme(scheme):
		want.dpop = r
	case !strings.EqualFold(scheme, "Bearer"):
		return invalid("use a Bearer token")
	}
	return s.checkBearer(r.Context(), strings.TrimSpace(tok), want)
}

// checkBearer is verifyBearer after the token has been taken from the
// request: every endpoint that finds its token elsewhere (userinfo's form
// body) still goes through this one check. An empty want.audience accepts
// any audience (userinfo serves every access token with scope openid).
func (s *Server) checkBearer(ctx context.Context, tok string, want bearerCheck) (*accessClaims, error) {
	invalid := func(desc string) (*accessClaims, error) {
		return nil, &Error{Code: "invalid_token", Description: desc, Status: http.StatusUnauthorized, bearer: want.realm + `, error="invalid_token"`}
	}
	at, why, err := s.liveAccessToken(ctx, tok)
	switch {
	case err != nil:
		return nil, ServerError(fmt.Errorf("verify bearer token: %w", err))
	case why != "":
		return invalid(why)
	case want.audience != "" && !slices.Contains(at.Aud, want.audience):
		return invalid("token is not for this audience")
	}
	// Last, so a dead token does not spend its proof.
	switch {
	case want.dpop != nil:
		if err := s.checkResourceProof(want.dpop, tok, at); err != nil {
			return nil, err
		}
	case at.Cnf != nil:
		return invalid("the token is bound to a DPoP key: present it with the DPoP scheme and a proof")
	}
	return at, nil
}

// liveAccessToken is the one liveness check of an access token of this
// Signet (bearer, introspection, VerifyToken): readAccessToken, within
// exp (no leeway: Signet's own clock issued it), nbf and iat, and not dead
// (tokenDead). why says why it is refused ("" when live); err is a store
// failure.
func (s *Server) liveAccessToken(ctx context.Context, tok string) (at *accessClaims, why string, err error) {
	a, terr := s.readAccessToken(tok)
	if terr != nil {
		return nil, terr.Description, nil
	}
	now, leeway := s.cfg.Now().Unix(), int64(adminLeeway/time.Second)
	switch {
	case a.Exp <= now:
		return nil, "token is expired", nil
	case a.Nbf > now+leeway, a.Iat > now+leeway:
		return nil, "token is not valid yet", nil
	}
	if why, err = s.tokenDead(ctx, &a); err != nil || why != "" {
		return nil, why, err
	}
	return &a, "", nil
}

// tokenDead says why a verified access token of this issuer is no longer
// honoured ("" when it is): its jti is on the denylist, it was issued
// before its subject's cutoff, or its client was deleted, replaced by
// another instance with the same id, or disabled. The bearer check and
// introspection both ask it, so they never disagree.
func (s *Server) tokenDead(ctx context.Context, at *accessClaims) (string, error) {
	why := ""
	err := s.cfg.Store.View(ctx, func(tx storage.Tx) error {
		why = ""
		if at.Jti != "" { // an ID token has none: cutoffs alone end it
			if _, err := tx.Get(denylistBucket, at.Jti); err == nil {
				why = "token has been revoked"
				return nil
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		cutoff, err := getInt(tx, cutoffsBucket, at.Sub)
		if err != nil {
			return err
		}
		if at.Iat < cutoff {
			why = "token was revoked by a logout"
		}
		return nil
	})
	if err != nil || why != "" {
		return why, err
	}
	ent, err := s.clients.Lookup(ctx, at.ClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "the token's client no longer exists", nil
	case err != nil:
		return "", err
	case ent.Record.Instance != at.Instance:
		return "the token's client no longer exists", nil // deleted, and the id reused
	case ent.Record.Disabled:
		return "the token's client is disabled", nil
	}
	return "", nil
}

// authorizationField returns the Authorization header field, "" when
// there is none. More than one field is refused (400 invalid_request):
// a proxy that reads another of them than Signet does would authenticate
// someone else. Every endpoint that reads the field reads it here.
func authorizationField(r *http.Request) (string, *Error) {
	v := r.Header.Values(echo.HeaderAuthorization)
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", InvalidRequest("the Authorization header field appears more than once")
}

// tokenError is why readAccessToken refused a token, in words fit for a
// bearer challenge.
type tokenError struct{ Description string }

func badToken(desc string) *tokenError { return &tokenError{desc} }

// readAccessToken verifies that tok is a compact JWS access token signed by
// a key this issuer publishes (pending, active or retired; never a revoked
// one), with the algorithm taken from the key and this issuer's iss, and
// returns its claims. It does not check times, audience, the denylist,
// cutoffs or the client: callers do what applies to them.
func (s *Server) readAccessToken(tok string) (accessClaims, *tokenError) {
	var at accessClaims
	payload, terr := s.verifyJWS(tok, func(typ string) *tokenError {
		if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
			return badToken("token is not an access token (typ)")
		}
		return nil
	})
	if terr != nil {
		return at, terr
	}
	at, err := readClaims(payload)
	if err != nil {
		return at, badToken("malformed token claims")
	}
	if at.Iss != s.cfg.Issuer {
		return at, badToken("token is not from this issuer")
	}
	return at, nil
}

// verifyJWS is the one parser of every JWS Signet reads (access tokens,
// id_token_hint): tok must be a compact JWS (RFC 7515 §7.1: exactly three
// parts; never the JSON serializations) signed by a key this issuer
// publishes, with the algorithm taken from the key; checkTyp judges the
// header's typ before any key is looked up. It returns the payload.
//
// Every part must be canonical base64url (RFC 7515 §2, RFC 4648 §3.5: no
// padding, unused bits of the last character zero), so that a token has
// one accepted spelling: a denylist, a cache or a log keyed by the token
// text cannot be sidestepped by another spelling of the same bytes. The
// signature is checked over the exact text received.
func (s *Server) verifyJWS(tok string, checkTyp func(typ string) *tokenError) ([]byte, *tokenError) {
	if len(tok) == 0 || len(tok) > maxBearerLen || strings.Count(tok, ".") != 2 ||
		strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
		return nil, badToken("malformed token")
	}
	parts := strings.SplitN(tok, ".", 3)
	var raw [3][]byte
	for i, p := range parts {
		b, err := canonicalBase64.DecodeString(p)
		if err != nil || len(b) == 0 {
			return nil, badToken("malformed token")
		}
		raw[i] = b
	}
	hdr, err := jsonObject(raw[0])
	if err != nil {
		return nil, badToken("malformed token header")
	}
	var alg, kid, typ string
	for _, h := range []struct {
		name string
		dst  *string
	}{{"alg", &alg}, {"kid", &kid}, {"typ", &typ}} {
		if v, ok := hdr[h.name]; !ok || json.Unmarshal(v, h.dst) != nil {
			return nil, badToken("malformed token header")
		}
	}
	if terr := checkTyp(typ); terr != nil {
		return nil, terr
	}
	for _, name := range []string{"crit", "jwk", "jku", "x5u", "x5c"} {
		if _, ok := hdr[name]; ok {
			return nil, badToken("unsupported token header")
		}
	}
	set, _ := s.cfg.KeySet.PublicSet()
	key, ok := set.LookupKeyID(kid)
	if !ok || kid == "" {
		return nil, badToken("token is not signed by a key of this issuer")
	}
	if ka := key.Algorithm().String(); !clients.SupportedAlgorithm(ka) || alg != ka {
		return nil, badToken("token algorithm does not match its key")
	}
	var pub any
	if err := key.Raw(&pub); err != nil {
		return nil, badToken("token is not signed by a key of this issuer")
	}
	v, err := jws.NewVerifier(jwa.SignatureAlgorithm(alg))
	if err != nil || v.Verify([]byte(parts[0]+"."+parts[1]), raw[2], pub) != nil {
		return nil, badToken("token signature is invalid")
	}
	return raw[1], nil
}

// canonicalBase64 is base64url without padding that refuses non-zero
// unused bits in the last character.
var canonicalBase64 = base64.RawURLEncoding.Strict()

// readClaims reads the claims Signet writes into an access token by their
// exact names. Never a struct decode: encoding/json matches struct fields
// case-insensitively, so a client's extra claim "SCOPE" or a user's "Sub",
// which follow Signet's own claims in the payload, would replace them. A
// payload naming any member twice is refused outright (RFC 7519 §4 lets
// a parser take either copy; Signet never writes one). Every claim Signet
// always writes is required; scope and client_instance may be absent.
func readClaims(payload []byte) (accessClaims, error) {
	var at accessClaims
	m, err := jsonObject(payload)
	if err != nil {
		return at, err
	}
	for _, c := range []struct {
		name     string
		dst      any
		required bool
	}{
		{"iss", &at.Iss, true}, {"sub", &at.Sub, true}, {"aud", &at.Aud, true},
		{"exp", &at.Exp, true}, {"nbf", &at.Nbf, true}, {"iat", &at.Iat, true},
		{"jti", &at.Jti, true}, {"client_id", &at.ClientID, true},
		{"scope", &at.Scope, false}, {clients.ClaimClientInstance, &at.Instance, false},
		{"cnf", &at.Cnf, false}, {"act", &at.Act, false},
	} {
		v, ok := m[c.name]
		if !ok {
			if c.required {
				return at, fmt.Errorf("claim %s is missing", c.name)
			}
			continue
		}
		if err := json.Unmarshal(v, c.dst); err != nil {
			return at, fmt.Errorf("claim %s: %w", c.name, err)
		}
	}
	if at.Iss == "" || at.Sub == "" || at.Jti == "" || at.ClientID == "" || at.Exp == 0 || at.Iat == 0 ||
		len(at.Aud) == 0 || slices.Contains(at.Aud, "") {
		return at, errors.New("a required claim is empty")
	}
	return at, nil
}

// jsonObject decodes one JSON object into its members, refusing a member
// name that appears twice (after unescaping) and anything after the object.
func jsonObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := t.(string) // a member name is always a string
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %q appears twice", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		m[name] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errors.New("unterminated JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}
