// Package jwksdoc publishes Signet's public keys as the JWK Set document
// (RFC 7517 §5) served at /.well-known/jwks.json.
//
// It lives under keys because it is the key manager's public face and
// Signet's own server is its only user; services that verify tokens import
// the jwks module, which knows nothing of publishing.
//
// The document is deterministic: keys sorted by kid (then alg), each key's
// members in lexicographic order, no insignificant whitespace. Replicas
// holding the same key set therefore serve byte-identical bodies and the
// same strong ETag (a hash of those bytes), whatever order they loaded the
// keys in, so a verifier's conditional request answered by any replica
// gets a 304.
package jwksdoc
