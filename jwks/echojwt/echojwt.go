// Package echojwt is the echo middleware of the jwks verifier. It is its
// own module so that a net/http service importing jwks never downloads
// echo, and an echo service gets echo and jwks and nothing else of Signet.
package echojwt

import (
	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/jwks"
)

// Middleware verifies the access token of each request with v (Bearer,
// and DPoP with its proof when v was built with jwks.WithDPoP). On success
// the claims are in the request context
// (jwks.ClaimsFromContext(c.Request().Context())). On failure it sets
// WWW-Authenticate (and DPoP-Nonce) and returns an *echo.HTTPError whose Message is the
// JSON body (a jwks.ErrorBody) and whose Internal is the verification
// error, so the application's error handler can log and count it; echo's
// default handler renders the body unchanged.
func Middleware(v *jwks.Verifier, opts ...jwks.MiddlewareOption) echo.MiddlewareFunc {
	a := jwks.NewAuthenticator(v, opts...)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req, ref := a.Authenticate(c.Request())
			if ref != nil {
				ref.SetHeaders(c.Response().Header()) // WWW-Authenticate, DPoP-Nonce
				return &echo.HTTPError{Code: ref.Status, Message: ref.Body(), Internal: ref.Err}
			}
			c.SetRequest(req)
			return next(c)
		}
	}
}
