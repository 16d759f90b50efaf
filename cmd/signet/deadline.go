package main

import (
	"context"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// requestDeadline bounds every request that may touch the store (tokens,
// introspection, revocation, userinfo, the login pages): shorter than a
// client's patience, so that when etcd has lost its leader or quorum the
// client gets 503 temporarily_unavailable with Retry-After in time to
// retry elsewhere, rather than a hung connection. The admin API is not
// bounded: a backup streams the whole store.
const requestDeadline = 2 * time.Second

// storeDeadline is the echo middleware that applies requestDeadline.
func storeDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if p := r.URL.Path; p == "/admin" || strings.HasPrefix(p, "/admin/") {
			return next(c)
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestDeadline)
		defer cancel()
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}
