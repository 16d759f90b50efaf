package echojwt_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/jwks/echojwt"
	"github.com/signet-auth/signet/jwks/internal/testauthority"
)

// The example runs against an in-process authority standing in for
// Signet at https://auth.example.com.
func ExampleMiddleware() {
	authority := testauthority.Start()
	defer authority.Close()
	v, err := jwks.NewVerifier(context.Background(), authority.Issuer(), jwks.WithAudience("https://billing.internal"))
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	e := echo.New()
	e.GET("/invoices", func(c echo.Context) error {
		claims, _ := jwks.ClaimsFromContext(c.Request().Context())
		return c.String(http.StatusOK, "invoices of "+claims.Subject)
	}, echojwt.Middleware(v, jwks.RequireScopes("invoices:read")))

	for _, token := range []string{
		authority.Token("alice", "https://billing.internal", "invoices:read"),
		authority.Token("bob", "https://billing.internal", "profile"),
		"",
	} {
		req := httptest.NewRequest(http.MethodGet, "/invoices", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// 200 invoices of alice
	// 403 {"error":"insufficient_scope","error_description":"the access token lacks a required scope"}
	// 401 {"error":"unauthorized","error_description":"bearer token required"}
}
