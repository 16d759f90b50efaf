package main

import "net/http"

// jwksPath is where the JWK Set is published.
const jwksPath = "/.well-known/jwks.json"

// withJWKS answers the JWKS path with jwks and everything else with next.
//
// Every verifier of every service polls the JWKS, so it is most of an
// authority's traffic, and its answer is a constant between key changes.
// Sent straight to its handler it skips echo's router and middleware
// (request id, access log, recovery), which cost many times the handler
// itself (BenchmarkJWKS in this package). Nothing is lost: the JWKS handler
// answers every method itself, sets its own headers (nosniff and CORS
// included) and is counted by signet_jwks_requests_total; the access log
// leaves JWKS requests out by default anyway.
func withJWKS(jwks, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == jwksPath {
			jwks.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
