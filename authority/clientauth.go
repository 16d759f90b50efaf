package authority

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
)

// authenticate identifies the client of a token, revocation or
// introspection request through clientauth, the one implementation of
// client authentication, and answers its refusals as RFC 6749 errors.
func (s *Server) authenticate(c echo.Context, r *http.Request, p *tokenParams) (*clients.Entry, error) {
	h, herr := authorizationField(r)
	if herr != nil {
		return nil, herr
	}
	ent, err := s.auth.Authenticate(r.Context(), clientauth.Request{
		Authorization: h,
		ClientID:      p.clientID,
		ClientSecret:  p.clientSecret,
		Assertion:     p.assertion,
		AssertionType: p.assertionType,
		Endpoint:      strings.TrimSuffix(s.cfg.Issuer, "/") + r.URL.Path,
		IP:            c.RealIP(),

		// RFC 7523 §2.1: a JWT grant may identify its client (federation).
		GrantType: p.grantType, GrantAssertion: p.form.Get("assertion"),
	})
	if err != nil {
		return nil, authError(err)
	}
	return ent, nil
}

// authError maps a clientauth refusal to the error the handlers render.
func authError(err error) error {
	var ae *clientauth.Error
	if !errors.As(err, &ae) {
		return ServerError(err)
	}
	retryAfter := int((ae.RetryAfter + time.Second - 1) / time.Second)
	if ae.Status == http.StatusTooManyRequests { // a deliberate refusal: logged once per episode
		return errRefused("auth_rate_limit", ae.Code, ae.Description, ae.Status, retryAfter, ae.Err)
	}
	return &Error{Code: ae.Code, Description: ae.Description, Status: ae.Status, Err: ae.Err,
		basic: ae.Basic, retryAfter: retryAfter}
}
