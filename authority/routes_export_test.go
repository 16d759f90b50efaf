package authority

import "github.com/labstack/echo/v4"

// RoutesForTest lists every route echo has registered, on the main handler
// and on the separate admin handler, for tests that walk them all.
func (s *Server) RoutesForTest() []*echo.Route {
	routes := s.echo.Routes()
	if s.admin != nil {
		routes = append(routes, s.admin.Routes()...)
	}
	return routes
}
