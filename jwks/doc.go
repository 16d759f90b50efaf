// Package jwks verifies Signet's access tokens (RFC 9068 JWTs) offline, in
// the services that trust Signet.
//
// NewVerifier reads the issuer's metadata and key set once, then a
// background refresher keeps the keys fresh (honouring Cache-Control and
// ETag) until Close. Verify checks a token against them, taking the
// algorithm from the key and never from the token; HTTPMiddleware does it
// for each request of a net/http handler, and package
// github.com/signet-auth/signet/jwks/echojwt for echo. NewProtectedResource
// describes the service as an RFC 9728 protected resource (an MCP server,
// say), and WithProtectedResource makes the middleware's refusals point
// clients at that metadata.
//
// This is a module of its own: it requires only jwx and the standard
// library, and its public API uses standard-library and own types only, so
// a service gets no web framework, nothing else of Signet, and nothing to
// change when the JOSE library underneath changes.
package jwks
