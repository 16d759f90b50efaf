package authority

import "github.com/labstack/echo/v4"

// Use adds middleware to every route of the server: the public routes,
// those added with Register, and the admin API on its own listener. Added
// after the server's own middleware, it runs inside it, for every request
// that reaches echo (the JWKS is served before echo).
func (s *Server) Use(mw ...echo.MiddlewareFunc) {
	s.echo.Use(mw...)
	if s.admin != nil {
		s.admin.Use(mw...)
	}
}

// AdminTokenMetrics is implemented by a TokenMetrics that counts the
// admin API's own tokens (audience AdminAudience, as the CLI's --server
// exchanges ask for) apart from client traffic: a busy operator or a
// scripted backup would otherwise show up as token traffic of a client.
type AdminTokenMetrics interface {
	IssuedAdmin(alg string)
}
