package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// MiddlewareOption configures EchoMiddleware and HTTPMiddleware.
type MiddlewareOption func(*middleware)

// RequireScopes makes the middleware answer 403 insufficient_scope unless
// the token carries every one of scopes.
func RequireScopes(scopes ...string) MiddlewareOption {
	return func(m *middleware) { m.scopes = append(m.scopes, scopes...) }
}

type middleware struct {
	v      *Verifier
	scopes []string
}

func newMiddleware(v *Verifier, opts []MiddlewareOption) *middleware {
	m := &middleware{v: v}
	for _, o := range opts {
		o(m)
	}
	return m
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

// challenge is a refusal: the status, the WWW-Authenticate challenge
// (RFC 6750 §3) and the JSON body. err is the verification error, for
// logs only: the body never says which check failed (SECURITY.md §1).
type challenge struct {
	status int
	code   string // empty for a request without credentials (RFC 6750 §3.1)
	desc   string
	scope  string
	err    error
}

// errorBody is the JSON body of a refusal.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

func (ch *challenge) header() string {
	if ch.code == "" {
		return "Bearer"
	}
	var b strings.Builder
	b.WriteString(`Bearer error="`)
	b.WriteString(ch.code)
	b.WriteString(`", error_description="`)
	b.WriteString(quoteSafe(ch.desc))
	b.WriteString(`"`)
	if ch.scope != "" {
		b.WriteString(`, scope="`)
		b.WriteString(quoteSafe(ch.scope))
		b.WriteString(`"`)
	}
	return b.String()
}

func (ch *challenge) body() errorBody {
	if ch.code == "" {
		return errorBody{Error: "unauthorized", ErrorDescription: ch.desc}
	}
	return errorBody{Error: ch.code, ErrorDescription: ch.desc}
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

// maxAuthorizationHeader caps the header before any parsing (J11).
const maxAuthorizationHeader = MaxTokenSize + len("Bearer ") + 64

// authenticate reads the bearer token, verifies it and checks the scopes.
func (m *middleware) authenticate(r *http.Request) (*Claims, *challenge) {
	vals := r.Header.Values("Authorization")
	if len(vals) > 1 {
		return nil, &challenge{status: http.StatusBadRequest, code: "invalid_request",
			desc: "more than one Authorization header", err: errors.New("jwks: several Authorization headers")}
	}
	var h string
	if len(vals) == 1 {
		h = vals[0]
	}
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// No credentials for us: a bare challenge, no error code.
		return nil, &challenge{status: http.StatusUnauthorized, desc: "bearer token required",
			err: errors.New("jwks: no bearer token")}
	}
	if len(h) > maxAuthorizationHeader {
		return nil, invalidToken(ErrMalformed)
	}
	claims, err := m.v.Verify(r.Context(), strings.TrimLeft(token, " "))
	if err != nil {
		return nil, invalidToken(err)
	}
	var missing []string
	for _, s := range m.scopes {
		if !claims.HasScope(s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, &challenge{status: http.StatusForbidden, code: "insufficient_scope",
			desc: "the access token lacks a required scope", scope: strings.Join(m.scopes, " "),
			err: errors.New("jwks: missing scopes " + strings.Join(missing, " "))}
	}
	return claims, nil
}

func invalidToken(err error) *challenge {
	return &challenge{status: http.StatusUnauthorized, code: "invalid_token",
		desc: "the access token is invalid", err: err}
}

// EchoMiddleware verifies the bearer token of each request. On success
// the claims are in the request context (ClaimsFromContext(c.Request().Context())).
// On failure it sets WWW-Authenticate and returns an *echo.HTTPError whose
// Message is the JSON body and whose Internal is the verification error,
// so the application's error handler can log and count it; echo's default
// handler renders the body unchanged.
func EchoMiddleware(v *Verifier, opts ...MiddlewareOption) echo.MiddlewareFunc {
	m := newMiddleware(v, opts)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			claims, ch := m.authenticate(req)
			if ch != nil {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, ch.header())
				return &echo.HTTPError{Code: ch.status, Message: ch.body(), Internal: ch.err}
			}
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), claimsKey{}, claims)))
			return next(c)
		}
	}
}

// HTTPMiddleware is EchoMiddleware for net/http. It writes refusals itself
// and logs the reason at debug level through the verifier's logger.
func HTTPMiddleware(v *Verifier, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	m := newMiddleware(v, opts)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, ch := m.authenticate(r)
			if ch != nil {
				m.v.log.LogAttrs(r.Context(), slog.LevelDebug, "bearer token refused",
					slog.Int("status", ch.status), slog.Any("reason", ch.err))
				w.Header().Set("WWW-Authenticate", ch.header())
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(ch.status)
				_ = json.NewEncoder(w).Encode(ch.body())
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}
