package clients

import (
	"crypto/rand"
	"encoding/base64"
)

// A client instance is one life of a client id. Create gives every client
// record a new random instance id; Update and RotateSecret keep it; Delete
// ends it. Every credential a client obtains is bound to its instance:
//
//   - access tokens carry it in the private claim client_instance
//     (ClaimClientInstance);
//   - refresh token families (the login sessions, cookie or not) store it
//     as familyRecord.ClientInstance.
//
// The bearer check, introspection, the refresh grant and revocation
// compare it with the current record of the token's client id, so a
// client deleted and created again under the same id (how a leaked
// credential is replaced) honours nothing the old one was given.
//
// Records written before instances existed have none (""): their tokens
// lack the claim and their families the field, which reads as "" too, so
// they keep working; a client created again always gets a random, non-empty
// instance, so deleting such a client still ends its credentials.
//
// Offline verifiers (jwks) know nothing of instances: a deleted client's
// access tokens stay valid there until they expire or are denylisted.

// ClaimClientInstance is the access-token claim carrying the client
// instance. Clients and users may not set it as an extra claim.
const ClaimClientInstance = "client_instance"

// newClientInstance returns a random 128-bit client instance id.
func newClientInstance() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
