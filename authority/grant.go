package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
)

// Grant is a grant type served at the token endpoint by a package of its
// own (RFC 7523 jwt-bearer, RFC 8693 token exchange), so that each grant's
// rules live beside its tests and this package keeps one token endpoint:
// it reads and bounds the form (RFC 6749 §3.2), authenticates the client,
// checks the DPoP proof and that the client is allowed the grant type; the
// Grant decides what the token says; the endpoint signs it with the
// client's key and answers.
type Grant interface {
	Grant(ctx context.Context, req GrantRequest) (Issue, error)
}

// GrantRequest is one token request, read and authenticated.
type GrantRequest struct {
	Client *clients.Entry
	// Form is the whole request body. A parameter appears at most once,
	// except resource (RFC 8707).
	Form            url.Values
	Scope, Audience string
	// Resources are the RFC 8707 resource parameters, deduplicated.
	Resources []string
	// DPoPJKT is the thumbprint of the checked DPoP proof's key ("" without
	// a proof); the token is bound to it.
	DPoPJKT string
	Now     time.Time
	// Header is the request's header (read only).
	Header http.Header
}

// Issue is the access token a Grant decided on. Errors a Grant returns
// should be *Error (RFC 6749 §5.2); any other error answers 500.
type Issue struct {
	Subject  string
	Scope    string
	Audience []string
	// Claims are further top-level claims, such as RFC 8693 act. A claim
	// every access token carries (accessClaimNames, in any case) is
	// refused with a 500: a grant must never forge iss, cnf or scope.
	Claims map[string]any
	// Expires caps the token's expiry (RFC 8693: never past the subject
	// token's); zero keeps the client's access-token lifetime.
	Expires time.Time
	// IssuedTokenType is the RFC 8693 issued_token_type member; "" omits
	// it.
	IssuedTokenType string
}

// accessClaimNames are the claims of accessClaims and the user claims
// Signet sets from its records.
var accessClaimNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "cnf", clients.ClaimClientInstance,
	"azp", "nonce", "auth_time", "acr", "amr", "sid", "typ", "roles", "email", "email_verified", "preferred_username"}

// extensionGrant answers a token request whose grant type is served by g.
func (s *Server) extensionGrant(c echo.Context, g Grant, ent *clients.Entry, p *tokenParams) error {
	if !slices.Contains(ent.Record.GrantTypes, p.grantType) {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the " + p.grantType + " grant", Status: http.StatusBadRequest}
	}
	r := c.Request()
	now := s.cfg.Now()
	is, err := g.Grant(r.Context(), GrantRequest{
		Client: ent, Form: p.form, Scope: p.scope, Audience: p.audience, Resources: p.resources,
		DPoPJKT: p.dpopJKT, Now: now, Header: r.Header,
	})
	if err != nil {
		return err
	}
	var extra []byte
	if len(is.Claims) > 0 {
		for name := range is.Claims {
			if slices.ContainsFunc(accessClaimNames, func(n string) bool { return strings.EqualFold(n, name) }) {
				return ServerError(fmt.Errorf("grant %s set the claim %q, which Signet sets", p.grantType, name))
			}
		}
		b, err := json.Marshal(is.Claims)
		if err != nil {
			return ServerError(fmt.Errorf("grant %s claims: %w", p.grantType, err))
		}
		extra = b[1 : len(b)-1] // object members without braces, as accessSpec.user
	}
	key, err := s.keyFor(ent)
	if err != nil {
		return err
	}
	sp := accessSpec{sub: is.Subject, scope: is.Scope, aud: is.Audience, jti: newJTI(), iat: now.Unix(), jkt: p.dpopJKT, user: extra}
	if !is.Expires.IsZero() {
		sp.expires = is.Expires.Unix()
		if sp.expires <= sp.iat {
			return &Error{Code: "invalid_grant", Description: "the grant has no lifetime left", Status: http.StatusBadRequest}
		}
	}
	at, err := s.sign(key, ent, sp)
	if err != nil {
		return err
	}
	if s.cfg.TokenMetrics != nil {
		s.cfg.TokenMetrics.Issued(p.grantType, ent.Record.SigningAlg, ent.Record.ID)
	}
	ttl := time.Duration(at.exp-sp.iat) * time.Second
	if is.IssuedTokenType == "" {
		return writeTokenResponseType(c, at.tokenType(), at.token, ttl, is.Scope, "")
	}
	return writeExchangeResponse(c, at.tokenType(), at.token, ttl, is.Scope, is.IssuedTokenType)
}

// writeExchangeResponse is the RFC 8693 §2.2.1 answer: the token response
// with issued_token_type.
func writeExchangeResponse(c echo.Context, tokenType, tok string, ttl time.Duration, scope, issued string) error {
	body := map[string]any{
		"access_token": tok, "token_type": tokenType, "expires_in": int64(ttl / time.Second),
		"issued_token_type": issued,
	}
	if scope != "" {
		body["scope"] = scope
	}
	h := c.Response().Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	return c.JSON(http.StatusOK, body)
}

// grantTypes are the grant types this server answers: the built-in ones
// and the configured extension grants.
func grantTypes(cfg Config) []string {
	var out []string
	for _, g := range clients.SupportedGrants() {
		if !clients.ExtensionGrant(g) || cfg.Grants[g] != nil {
			out = append(out, g)
		}
	}
	return out
}
