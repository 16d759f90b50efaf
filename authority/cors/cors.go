// Package cors answers browsers' cross-origin checks (the Fetch standard's
// CORS protocol) for the endpoints a client running in a web page calls
// itself: discovery, the token, revocation and userinfo endpoints, the
// revocation feed and dynamic registration. Which origin may read an
// answer is decided where the answer is made (a public client's web
// origins at the token endpoint, anyone for public metadata); this package
// is the one place that spells the headers, so that a preflight and the
// answer that follows it cannot disagree about methods or headers.
//
// A preflight only says which request a page may send, never whether the
// answer may be read; so answering every origin's preflight for the token
// endpoint gives a page nothing it did not have (a form POST needs no
// preflight at all), while the answer itself is still gated by the
// client's origins.
package cors

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// MaxAge is how long a browser may reuse a preflight answer: long enough
// that a page's token refreshes do not each cost a round trip, short
// enough that a changed policy reaches browsers within minutes.
const MaxAge = 10 * 60

// Policy is what one endpoint lets a cross-origin page send.
type Policy struct {
	// Methods the page may use, e.g. "GET, POST".
	Methods string
	// Headers the page may set beyond the CORS-safelisted ones, e.g.
	// "Authorization, DPoP". Authorization is never covered by "*" and
	// must be named.
	Headers string
	// Expose names the answer headers a page may read beyond the
	// safelisted ones, e.g. "DPoP-Nonce, WWW-Authenticate" (a DPoP client
	// must read the nonce the server asks for, RFC 9449 §8).
	Expose string
	// Credentials is true where a page sends cookies (the refresh token
	// cookie at the token and revocation endpoints): the answer then names
	// the page's origin instead of "*", which browsers refuse with
	// credentials.
	Credentials bool
}

// Public is the policy of metadata and bearer endpoints that anyone may
// read: no cookies, so "*" is allowed, and any header a page sends to
// them (MCP clients send MCP-Protocol-Version to discovery).
func Public(methods string, headers ...string) Policy {
	h := "*"
	for _, x := range headers {
		h += ", " + x
	}
	return Policy{Methods: methods, Headers: h, Expose: "WWW-Authenticate"}
}

// Preflight answers OPTIONS. With Origin and Access-Control-Request-Method
// it is a CORS preflight and gets the policy's headers; without them it is
// a plain OPTIONS and gets only Allow. Either way 204, no body.
func (p Policy) Preflight(c echo.Context) error {
	r := c.Request()
	h := c.Response().Header()
	h.Set("Allow", "OPTIONS, "+p.Methods)
	origin := r.Header.Get(echo.HeaderOrigin)
	if origin != "" && r.Header.Get(echo.HeaderAccessControlRequestMethod) != "" {
		p.allowOrigin(h, origin)
		h.Set(echo.HeaderAccessControlAllowMethods, p.Methods)
		if p.Headers != "" {
			h.Set(echo.HeaderAccessControlAllowHeaders, p.Headers)
		}
		h.Set(echo.HeaderAccessControlMaxAge, strconv.Itoa(MaxAge))
	}
	return c.NoContent(http.StatusNoContent)
}

// Answer marks a public endpoint's answer readable by any origin. For a
// policy with credentials the caller decides the origin (AllowOrigin)
// after it knows the client.
func (p Policy) Answer(c echo.Context) {
	h := c.Response().Header()
	h.Set(echo.HeaderAccessControlAllowOrigin, "*")
	if p.Expose != "" {
		h.Set(echo.HeaderAccessControlExposeHeaders, p.Expose)
	}
}

// AllowOrigin marks an answer readable by origin, which the caller has
// checked (a web origin of the client the request is for).
func (p Policy) AllowOrigin(c echo.Context, origin string) {
	h := c.Response().Header()
	p.allowOrigin(h, origin)
	if p.Expose != "" {
		h.Set(echo.HeaderAccessControlExposeHeaders, p.Expose)
	}
}

func (p Policy) allowOrigin(h http.Header, origin string) {
	if !p.Credentials {
		h.Set(echo.HeaderAccessControlAllowOrigin, "*")
		return
	}
	h.Set(echo.HeaderAccessControlAllowOrigin, origin)
	h.Set(echo.HeaderAccessControlAllowCredentials, "true")
	h.Add(echo.HeaderVary, echo.HeaderOrigin)
}
