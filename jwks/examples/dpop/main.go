// Command dpop is a net/http service that accepts DPoP-bound Signet access
// tokens (RFC 9449) beside plain bearer tokens: GET /invoices needs a token
// for https://billing.internal with the scope invoices:read, presented as
// `Authorization: DPoP <token>` with a `DPoP: <proof>` header made with the
// key the token is bound to. docs/dpop.md quotes this file.
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
	// The URL clients call: proofs name it in htu. Behind a proxy that
	// terminates TLS, the request alone cannot tell.
	origin := os.Getenv("PUBLIC_ORIGIN") // e.g. https://billing.example.com

	// One checker per process: its replay cache is what makes each proof
	// single use. Proofs may be up to a minute old (iat), 30 s ahead.
	checker, err := jwks.NewDPoPChecker(jwks.WithDPoPOrigin(origin))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	v, err := jwks.NewVerifier(ctx, issuer, jwks.WithAudience(audience), jwks.WithDPoP(checker))
	cancel()
	if err != nil {
		log.Fatalf("no keys from %s: %v", issuer, err)
	}
	defer v.Close()

	log.Fatal(http.ListenAndServe(":8080", routes(v)))
}

func routes(v *jwks.Verifier) http.Handler {
	mux := http.NewServeMux()
	requireRead := jwks.HTTPMiddleware(v, jwks.RequireScopes("invoices:read"))
	mux.Handle("GET /invoices", requireRead(http.HandlerFunc(listInvoices)))
	return mux
}

func listInvoices(w http.ResponseWriter, r *http.Request) {
	claims, _ := jwks.ClaimsFromContext(r.Context())
	if claims.JKT() != "" {
		// Bound token, proof checked: the caller holds the key.
		fmt.Fprintf(w, "invoices of %s (DPoP key %s)\n", claims.Subject, claims.JKT())
		return
	}
	fmt.Fprintf(w, "invoices of %s (bearer)\n", claims.Subject)
}
