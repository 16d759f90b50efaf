package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// MiddlewareOption configures an Authenticator, and so HTTPMiddleware and
// the echo middleware of package echojwt.
type MiddlewareOption func(*Authenticator)

// RequireScopes makes the middleware answer 403 insufficient_scope unless
// the token carries every one of scopes.
func RequireScopes(scopes ...string) MiddlewareOption {
	return func(a *Authenticator) { a.scopes = append(a.scopes, scopes...) }
}

// Authenticator is the framework-free part of the middleware: it reads the
// bearer token of a request, verifies it and checks the required scopes.
// HTTPMiddleware wraps it for net/http and package echojwt for echo; a
// middleware for another framework wraps it the same way.
type Authenticator struct {
	v        *Verifier
	scopes   []string
	resource *ProtectedResource // WithProtectedResource; nil: none
}

// NewAuthenticator returns an Authenticator that verifies with v.
func NewAuthenticator(v *Verifier, opts ...MiddlewareOption) *Authenticator {
	a := &Authenticator{v: v}
	for _, o := range opts {
		o(a)
	}
	if a.resource != nil && a.resource.v != v {
		panic("jwks: WithProtectedResource: the ProtectedResource was built on another Verifier")
	}
	return a
}

// claimsKey is the context key for verified claims; unexported so only
// this package can set it.
type claimsKey struct{}

// ClaimsFromContext returns the claims the middleware verified for this
// request.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Refusal is a request the Authenticator refused, and how to answer it
// (RFC 6750 §3). The answer never says which check failed (a forger learns
// nothing); Err says it, for logs and metrics.
type Refusal struct {
	// Status is 400 (several Authorization headers), 401 (no bearer token,
	// or a token that does not verify) or 403 (a required scope missing).
	Status int
	// Code is the RFC 6750 error code: invalid_request, invalid_token or
	// insufficient_scope; empty when the request had no bearer token
	// (RFC 6750 §3.1).
	Code string
	// Description is the error_description sent to the client.
	Description string
	// Scope lists the required scopes: with insufficient_scope, and on a
	// 401 of a protected resource (WithProtectedResource), so that the
	// client knows what to ask for.
	Scope string
	// Err is why: a verification error wrapping one of the Err* values,
	// or a description of the missing header or scopes.
	Err error
	// Scheme is the scheme of the challenge that carries Code: "Bearer"
	// (when empty) or "DPoP" (RFC 9449 §7.1: invalid_dpop_proof,
	// use_dpop_nonce, and invalid_token for a token presented as DPoP).
	Scheme string
	// DPoPAlgs, when set, are the proof algorithms the service takes: the
	// answer then carries a DPoP challenge with algs= as well.
	DPoPAlgs string
	// Nonce, when set, is sent in a DPoP-Nonce header (use_dpop_nonce).
	Nonce string
	// ResourceMetadata, when set, is the URL of the resource's RFC 9728
	// metadata, sent as resource_metadata in each challenge (RFC 9728 §5.1).
	ResourceMetadata string
}

// Error describes the refusal with its cause, for logs.
func (r *Refusal) Error() string {
	return "jwks: request refused (" + http.StatusText(r.Status) + "): " + r.Err.Error()
}

// Unwrap returns Err, so errors.Is(refusal, ErrExpired) works.
func (r *Refusal) Unwrap() error { return r.Err }

// ErrorBody is the JSON body of a refusal.
type ErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// WWWAuthenticate is the value of the WWW-Authenticate header to send.
// With DPoPAlgs it holds two challenges (RFC 9110 §11.6.1), the one with
// the error first; resource_metadata, when set, is in each.
func (r *Refusal) WWWAuthenticate() string {
	scheme := r.Scheme
	if scheme == "" {
		scheme = "Bearer"
	}
	var params []string
	if r.Code != "" {
		params = append(params, `error="`+r.Code+`"`, `error_description="`+quoteSafe(r.Description)+`"`)
	}
	if r.Scope != "" {
		params = append(params, `scope="`+quoteSafe(r.Scope)+`"`)
	}
	var dpopParams []string
	if r.DPoPAlgs != "" {
		dpopParams = append(dpopParams, `algs="`+quoteSafe(r.DPoPAlgs)+`"`)
	}
	rm := ""
	if r.ResourceMetadata != "" {
		rm = `resource_metadata="` + quoteSafe(r.ResourceMetadata) + `"`
	}
	if scheme == "DPoP" {
		return challenge(scheme, append(append(params, dpopParams...), rm))
	}
	out := challenge(scheme, append(params, rm))
	if dpopParams != nil {
		out += ", " + challenge("DPoP", append(dpopParams, rm))
	}
	return out
}

// challenge is one RFC 9110 §11.3 challenge: the scheme, then the
// non-empty parameters separated by commas.
func challenge(scheme string, params []string) string {
	var b strings.Builder
	b.WriteString(scheme)
	sep := " "
	for _, p := range params {
		if p == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(p)
		sep = ", "
	}
	return b.String()
}

// SetHeaders sets the headers of the answer: WWW-Authenticate, and
// DPoP-Nonce when the refusal asks for a nonce. Both are named in
// Access-Control-Expose-Headers: a client in a browser tab finds the
// resource metadata (and the nonce) only there, and the header has effect
// only when the application allows the page's origin at all.
func (r *Refusal) SetHeaders(h http.Header) {
	h.Set("WWW-Authenticate", r.WWWAuthenticate())
	expose := "WWW-Authenticate"
	if r.Nonce != "" {
		h.Set("DPoP-Nonce", r.Nonce)
		expose += ", DPoP-Nonce"
	}
	h.Add("Access-Control-Expose-Headers", expose)
}

// Body is the JSON body to send.
func (r *Refusal) Body() ErrorBody {
	if r.Code == "" {
		return ErrorBody{Error: "unauthorized", ErrorDescription: r.Description}
	}
	return ErrorBody{Error: r.Code, ErrorDescription: r.Description}
}

// WriteResponse writes the whole answer: WWW-Authenticate, Content-Type,
// the status and the JSON body.
func (r *Refusal) WriteResponse(w http.ResponseWriter) {
	r.SetHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.Status)
	_ = json.NewEncoder(w).Encode(r.Body())
}

// quoteSafe drops the characters RFC 6750 §3 excludes from these
// quoted-string values: error_description and scope allow only
// %x20-21 / %x23-5B / %x5D-7E (no ", no \, no controls, no non-ASCII).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

// maxAuthorizationHeader caps the header before any parsing.
const maxAuthorizationHeader = MaxTokenSize + len("Bearer ") + 64

// Authenticate verifies the access token of r (VerifyRequest: Bearer, and
// DPoP with WithDPoP) and checks the scopes. It returns r with the claims in
// its context (see ClaimsFromContext), or the refusal to answer with.
func (a *Authenticator) Authenticate(r *http.Request) (*http.Request, *Refusal) {
	claims, err := a.v.VerifyRequest(r.Context(), r)
	if err == nil && a.resource != nil && !slices.Contains(claims.Audience, a.resource.md.Resource) {
		// The verifier may accept several audiences; this resource takes
		// only tokens issued for it (RFC 8707 §2, RFC 9728 §7.4).
		err = fmt.Errorf("aud does not name the resource %q: %w", a.resource.md.Resource, ErrAudience)
	}
	if err != nil {
		return nil, a.refusal(r, err)
	}
	var missing []string
	for _, s := range a.scopes {
		if !claims.HasScope(s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		ref := &Refusal{Status: http.StatusForbidden, Code: "insufficient_scope",
			Description: "the access token lacks a required scope", Scope: strings.Join(a.scopes, " "),
			Err: errors.New("missing scopes " + strings.Join(missing, " "))}
		if claims.JKT() != "" {
			ref.Scheme = "DPoP" // only a DPoP-presented token gets here bound
		}
		a.addDPoP(ref)
		a.addResource(ref)
		return nil, ref
	}
	return r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)), nil
}

// refusal maps a VerifyRequest error to its answer.
func (a *Authenticator) refusal(r *http.Request, err error) *Refusal {
	var ref *Refusal
	switch {
	case errors.Is(err, ErrInvalidRequest):
		ref = &Refusal{Status: http.StatusBadRequest, Code: "invalid_request",
			Description: "more than one Authorization header", Err: err}
	case errors.Is(err, ErrNoToken):
		// No credentials for us: a bare challenge, no error code.
		ref = &Refusal{Status: http.StatusUnauthorized, Description: "bearer token required", Err: err}
	case errors.Is(err, ErrDPoPNonce):
		ref = &Refusal{Status: http.StatusUnauthorized, Code: "use_dpop_nonce", Scheme: "DPoP",
			Description: "the resource server requires a nonce in the DPoP proof", Nonce: a.v.dpop.Nonce(), Err: err}
	case errors.Is(err, ErrDPoPProof):
		ref = &Refusal{Status: http.StatusUnauthorized, Code: "invalid_dpop_proof", Scheme: "DPoP",
			Description: "the DPoP proof is invalid", Err: err}
	default:
		ref = invalidToken(err)
		if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); a.v.dpop != nil && strings.EqualFold(scheme, "DPoP") {
			ref.Scheme = "DPoP"
		}
	}
	a.addDPoP(ref)
	a.addResource(ref)
	return ref
}

// addResource points a 401 or 403 at the resource's metadata, and tells a
// 401 which scopes to ask for.
func (a *Authenticator) addResource(ref *Refusal) {
	if a.resource == nil || (ref.Status != http.StatusUnauthorized && ref.Status != http.StatusForbidden) {
		return
	}
	ref.ResourceMetadata = a.resource.metadataURL
	if ref.Scope == "" && ref.Status == http.StatusUnauthorized {
		ref.Scope = strings.Join(a.scopes, " ")
	}
}

// addDPoP advertises DPoP in the answer when the verifier takes it.
func (a *Authenticator) addDPoP(ref *Refusal) {
	if a.v.dpop != nil && (ref.Status == http.StatusUnauthorized || ref.Scheme == "DPoP") {
		ref.DPoPAlgs = a.v.dpop.Algorithms()
	}
}

func invalidToken(err error) *Refusal {
	return &Refusal{Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token is invalid", Err: err}
}

// HTTPMiddleware verifies the bearer token of each request. On success the
// claims are in the request context (ClaimsFromContext(r.Context())); on
// failure it writes the refusal (Refusal.WriteResponse) and logs the reason
// at debug level through the verifier's logger.
func HTTPMiddleware(v *Verifier, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	a := NewAuthenticator(v, opts...)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r2, ref := a.Authenticate(r)
			if ref != nil {
				v.log.LogAttrs(r.Context(), slog.LevelDebug, "bearer token refused",
					slog.Int("status", ref.Status), slog.Any("reason", ref.Err))
				ref.WriteResponse(w)
				return
			}
			next.ServeHTTP(w, r2)
		})
	}
}
