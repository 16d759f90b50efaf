package authority

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
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
