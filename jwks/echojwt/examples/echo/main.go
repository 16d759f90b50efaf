// Command echo is a complete echo service that accepts Signet access
// tokens: GET /invoices needs a token for https://billing.internal with the
// scope invoices:read. The README quotes this file.
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/jwks/echojwt"
)

const audience = "https://billing.internal" // this service, as Signet's clients name it

func main() {
	issuer := os.Getenv("SIGNET_ISSUER") // e.g. https://auth.example.com

	// The timeout bounds the start-up fetches only; the verifier keeps its
	// keys fresh in the background until Close.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	v, err := jwks.NewVerifier(ctx, issuer, jwks.WithAudience(audience))
	cancel()
	if err != nil {
		log.Fatalf("no keys from %s: %v", issuer, err) // or retry, answering 503 meanwhile
	}
	defer v.Close()

	log.Fatal(routes(v).Start(":8080"))
}

func routes(v *jwks.Verifier) *echo.Echo {
	e := echo.New()
	e.GET("/invoices", listInvoices, echojwt.Middleware(v, jwks.RequireScopes("invoices:read")))
	e.GET("/healthz", func(c echo.Context) error {
		if err := v.Healthy(); err != nil {
			// Still verifying with the last good keys: degraded, not down.
			return c.String(http.StatusOK, "degraded: "+err.Error()+"\n")
		}
		return c.String(http.StatusOK, "ok\n")
	})
	return e
}

func listInvoices(c echo.Context) error {
	claims, _ := jwks.ClaimsFromContext(c.Request().Context())
	return c.String(http.StatusOK, "invoices of "+claims.Subject+" (client "+claims.ClientID+")\n")
}
