package authority

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/signet-auth/signet/storage"
)

const userinfoRealm = `Bearer realm="signet"`

// userinfoCaller is what a verified userinfo access token says.
type userinfoCaller struct {
	sub, scope, jti string
	iat             int64
}

func errUserinfoToken(desc string) *Error {
	return &Error{Code: "invalid_token", Description: desc, Status: http.StatusUnauthorized, bearer: userinfoRealm + `, error="invalid_token"`}
}

// userinfoToken finds and verifies the access token of a userinfo request:
// from the Authorization header, or (POST) the access_token form field
// (RFC 6750 §2.1, §2.2), never both. The token must be an access token
// (typ at+jwt) of this issuer signed by a published key, unexpired.
func (s *Server) userinfoToken(r *http.Request) (userinfoCaller, error) {
	tok := ""
	if h := r.Header.Get(echo.HeaderAuthorization); h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return userinfoCaller{}, errUserinfoToken("use a Bearer token")
		}
		tok = strings.TrimSpace(t)
	}
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); mt == echo.MIMEApplicationForm {
			r.Body = http.MaxBytesReader(nil, r.Body, maxTokenBody)
			if err := r.ParseForm(); err != nil {
				return userinfoCaller{}, errInvalidRequest("malformed form body")
			}
			if v := r.PostForm["access_token"]; len(v) > 0 {
				if tok != "" || len(v) > 1 {
					return userinfoCaller{}, errInvalidRequest("send the access token once, in the header or the body")
				}
				tok = v[0]
			}
		}
	}
	if tok == "" {
		return userinfoCaller{}, &Error{Code: "invalid_request", Description: "bearer token required", Status: http.StatusUnauthorized, bearer: userinfoRealm}
	}
	if len(tok) > maxBearerLen || strings.Count(tok, ".") != 2 {
		return userinfoCaller{}, errUserinfoToken("malformed token")
	}
	msg, err := jws.ParseString(tok)
	if err != nil || len(msg.Signatures()) != 1 {
		return userinfoCaller{}, errUserinfoToken("malformed token")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if typ := hdr.Type(); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return userinfoCaller{}, errUserinfoToken("token is not an access token (typ)")
	}
	set, _ := s.cfg.KeySet.PublicSet()
	key, ok := set.LookupKeyID(hdr.KeyID())
	if !ok || hdr.KeyID() == "" || len(hdr.Critical()) > 0 {
		return userinfoCaller{}, errUserinfoToken("token is not signed by a key of this issuer")
	}
	alg := key.Algorithm().String()
	if !slices.Contains(supportedAlgorithms, alg) || hdr.Algorithm().String() != alg {
		return userinfoCaller{}, errUserinfoToken("token algorithm does not match its key")
	}
	claims, err := jwt.Parse([]byte(tok),
		jwt.WithKey(jwa.SignatureAlgorithm(alg), key),
		jwt.WithValidate(true),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithClock(jwt.ClockFunc(s.cfg.Now)),
		jwt.WithAcceptableSkew(adminLeeway),
	)
	if err != nil {
		return userinfoCaller{}, errUserinfoToken("token is invalid or expired")
	}
	scope, _ := claims.PrivateClaims()["scope"].(string)
	return userinfoCaller{sub: claims.Subject(), scope: scope, jti: claims.JwtID(), iat: claims.IssuedAt().Unix()}, nil
}

// userinfo is GET and POST /oauth2/userinfo (OIDC Core §5.3): the claims of
// the token's user that its scope allows, sub always.
func (s *Server) userinfo(c echo.Context) error {
	r := c.Request()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return &Error{Code: "invalid_request", Description: "userinfo accepts GET and POST", Status: http.StatusMethodNotAllowed, allow: "GET, POST"}
	}
	c.Response().Header().Set(echo.HeaderAccessControlAllowOrigin, "*")
	caller, err := s.userinfoToken(r)
	if err != nil {
		return err
	}
	if !hasScope(caller.scope, "openid") {
		return &Error{Code: "insufficient_scope", Description: "the access token was not granted scope openid", Status: http.StatusForbidden,
			bearer: userinfoRealm + `, error="insufficient_scope", scope="openid"`}
	}
	var rec userRecord
	var cutoff int64
	revoked := false
	err = s.cfg.Store.View(r.Context(), func(tx storage.Tx) error {
		var err error
		if rec, err = getUser(tx, caller.sub); err != nil {
			return err
		}
		if cutoff, err = getInt(tx, cutoffsBucket, caller.sub); err != nil {
			return err
		}
		if caller.jti != "" {
			if _, err := tx.Get(denylistBucket, caller.jti); err == nil {
				revoked = true
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errUserinfoToken("the token's user no longer exists")
	}
	if err != nil {
		return errServer(fmt.Errorf("userinfo: %w", err))
	}
	if rec.Disabled || revoked || caller.iat < cutoff {
		return errUserinfoToken("token is revoked")
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
