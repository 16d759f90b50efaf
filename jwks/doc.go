// Package jwks is both sides of Signet's published keys.
//
// Publishing: Handler serves /.well-known/jwks.json from a KeySource, with
// the body and a strong ETag computed once per key change.
//
// Consuming: Verifier is what a microservice imports to verify Signet access
// tokens offline, with caching, refetch on unknown kid, and the algorithm
// taken from the key, never from the token. This package imports nothing
// else of Signet, so a service depends on jwks alone.
package jwks
