package authority

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
)

// The refresh token cookie of cookie clients (refreshCookie). On an https
// issuer its name carries the __Host- prefix: browsers then take it only
// from this host, Secure, for Path=/, so a sibling subdomain can neither
// plant a refresh token of its choosing in an SPA's browser nor shadow the
// real one. Plain http (loopback development) keeps the bare name and the
// /oauth2 path.

// refreshCookieName is the name of the refresh token cookie here.
func (s *Server) refreshCookieName() string {
	if s.httpsIssuer() {
		return "__Host-" + refreshCookie
	}
	return refreshCookie
}

func (s *Server) httpsIssuer() bool { return strings.HasPrefix(s.cfg.Issuer, "https://") }

// setRefreshCookie sets (maxAge > 0) or clears (maxAge < 0) the refresh
// token cookie.
func (s *Server) setRefreshCookie(c echo.Context, value string, maxAge int) {
	path := "/oauth2"
	if s.httpsIssuer() {
		path = "/" // __Host- requires Path=/
	}
	c.SetCookie(&http.Cookie{Name: s.refreshCookieName(), Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// readRefreshCookie returns the refresh token cookie's value, if sent.
func (s *Server) readRefreshCookie(c echo.Context) (string, bool) {
	ck, err := c.Cookie(s.refreshCookieName())
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

// cookieRefreshToken returns the refresh token a cookie client's request
// carries in the cookie, and whether it did. SameSite=Strict keeps other
// sites from sending the cookie, but not pages of the same site (a sibling
// subdomain): a request that uses the cookie must come from one of the
// client's own origins (those of its redirect URIs). A browser always
// sends Origin on the POST of fetch or a form; a browser request without
// it (Sec-Fetch-Site other than same-origin) is refused too. A request
// with neither header is not from a browser, and carries a cookie only if
// its sender already holds the token.
func (s *Server) cookieRefreshToken(c echo.Context, ent *clients.Entry) (string, bool, error) {
	tok, ok := s.readRefreshCookie(c)
	if !ok {
		return "", false, nil
	}
	r := c.Request()
	if origin := r.Header.Get("Origin"); origin != "" {
		if !ent.Record.WebOrigin(origin) {
			return "", false, &Error{Code: "invalid_request", Status: http.StatusBadRequest,
				Description: "the request's Origin is not an origin of the client's redirect URIs, so the refresh token cookie is not used"}
		}
		return tok, true, nil
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
		return tok, true, nil
	}
	return "", false, &Error{Code: "invalid_request", Status: http.StatusBadRequest,
		Description: "a browser request that uses the refresh token cookie must carry an Origin header"}
}
