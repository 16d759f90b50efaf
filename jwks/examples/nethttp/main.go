// Command nethttp is a complete net/http service that accepts Signet access
// tokens: GET /invoices needs a token for https://billing.internal with the
// scope invoices:read. The README quotes this file.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/signet-auth/signet/jwks"
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

	log.Fatal(http.ListenAndServe(":8080", routes(v)))
}

func routes(v *jwks.Verifier) http.Handler {
	mux := http.NewServeMux()
	requireRead := jwks.HTTPMiddleware(v, jwks.RequireScopes("invoices:read"))
	mux.Handle("GET /invoices", requireRead(http.HandlerFunc(listInvoices)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := v.Healthy(); err != nil {
			// Still verifying with the last good keys: degraded, not down.
			fmt.Fprintln(w, "degraded:", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func listInvoices(w http.ResponseWriter, r *http.Request) {
	claims, _ := jwks.ClaimsFromContext(r.Context())
	fmt.Fprintf(w, "invoices of %s (client %s)\n", claims.Subject, claims.ClientID)
}
