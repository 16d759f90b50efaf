package authority

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

const userinfoRealm = `Bearer realm="signet"`

// userinfoCaller is what a verified userinfo access token says.
type userinfoCaller struct {
	sub, scope string
}

func errUserinfoToken(desc string) *Error {
	return &Error{Code: "invalid_token", Description: desc, Status: http.StatusUnauthorized, bearer: userinfoRealm + `, error="invalid_token"`}
}

// userinfoToken finds the access token of a userinfo request, from the
// Authorization header (once) or (POST) the access_token form field (RFC
// 6750 §2.1, §2.2), never both, and verifies it with the shared bearer
// check: any audience, but live (not revoked, not before its subject's
// cutoff, its client instance still there).
func (s *Server) userinfoToken(r *http.Request) (userinfoCaller, error) {
	h, herr := authorizationField(r)
	if herr != nil {
		herr.bearer = userinfoRealm + `, error="invalid_request"`
		return userinfoCaller{}, herr
	}
	tok := ""
	want := bearerCheck{realm: userinfoRealm}
	if h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		switch {
		case s.dpopScheme(scheme):
			want.dpop = r
		case !strings.EqualFold(scheme, "Bearer"):
			return userinfoCaller{}, errUserinfoToken("use a Bearer token")
		}
		tok = strings.TrimSpace(t)
	}
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); mt == echo.MIMEApplicationForm {
			r.Body = http.MaxBytesReader(nil, r.Body, maxTokenBody)
			if err := r.ParseForm(); err != nil {
				return userinfoCaller{}, InvalidRequest("malformed form body")
			}
			if v := r.PostForm["access_token"]; len(v) > 0 {
				if tok != "" || len(v) > 1 {
					return userinfoCaller{}, InvalidRequest("send the access token once, in the header or the body")
				}
				tok = v[0]
			}
		}
	}
	if tok == "" {
		return userinfoCaller{}, &Error{Code: "invalid_request", Description: "bearer token required", Status: http.StatusUnauthorized, bearer: userinfoRealm}
	}
	at, err := s.checkBearer(r.Context(), tok, want)
	if err != nil {
		return userinfoCaller{}, err
	}
	return userinfoCaller{sub: at.Sub, scope: at.Scope}, nil
}

// userinfo is GET and POST /oauth2/userinfo (OIDC Core §5.3): the claims of
// the token's user that its scope allows, sub always.
func (s *Server) userinfo(c echo.Context) error {
	r := c.Request()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return &Error{Code: "invalid_request", Description: "userinfo accepts GET and POST", Status: http.StatusMethodNotAllowed, allow: "GET, POST"}
	}
	userinfoCORS.Answer(c)
	caller, err := s.userinfoToken(r)
	if err != nil {
		return err
	}
	if !hasScope(caller.scope, "openid") {
		return &Error{Code: "insufficient_scope", Description: "the access token was not granted scope openid", Status: http.StatusForbidden,
			bearer: userinfoRealm + `, error="insufficient_scope", scope="openid"`}
	}
	var rec users.Record
	err = s.cfg.Store.View(r.Context(), func(tx storage.Tx) error {
		var err error
		rec, err = users.Read(tx, caller.sub)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errUserinfoToken("the token's user no longer exists")
	}
	if err != nil {
		return ServerError(fmt.Errorf("userinfo: %w", err))
	}
	if rec.Disabled {
		return errUserinfoToken("the token's user is disabled")
	}
	out := map[string]any{"sub": rec.ID}
	if hasScope(caller.scope, "profile") {
		out["preferred_username"] = rec.Username
		if rec.Name != "" {
			out["name"] = rec.Name
		}
		for k, v := range rec.Claims {
			out[k] = v
		}
		out["updated_at"] = rec.UpdatedAt.Unix()
	}
	if hasScope(caller.scope, "email") && rec.Email != "" {
		out["email"] = rec.Email
		out["email_verified"] = rec.EmailVerified
	}
	h := c.Response().Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	return c.JSON(http.StatusOK, out)
}
