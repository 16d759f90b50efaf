// Package custody is the boundary between Signet's key lifecycle (package
// keys: pending, rotation, purge, revoke, fencing) and the place a private key
// lives. The lifecycle never touches private material: it asks a Custody to
// generate a key pair, to sign with it and to destroy it, and stores only what
// the custody hands back (a handle) beside the public key and the kid.
//
// Two custodies exist: keys' own sealed-in-store keys (the private half
// sealed under the KEK in the record, decrypted into memory to sign: the
// fastest) and PKCS#11 (package keys/custody/pkcs11: the private half is
// generated inside a hardware module and never leaves it).
package custody

import (
	"context"
	"crypto"
	"errors"
	"time"
)

// Store is the name of the sealed-in-store custody, the default. A record
// with no custody name is held there (every record written before custody
// existed).
const Store = "store"

// ErrUnavailable wraps every failure to reach the place keys live (an HSM
// that does not answer, a token that is not there): Signet then refuses to
// sign, like a stale replica, and keeps serving its JWKS.
var ErrUnavailable = errors.New("key custody unavailable")

// Key is a key pair a Custody generated.
type Key struct {
	// Signer signs with the private half; for an external custody every
	// signature is a call into it.
	Signer crypto.Signer
	// Handle is what the store keeps to find the private half again:
	// sealed PKCS #8 for the store custody, the object's CKA_ID for PKCS#11.
	Handle []byte
}

// Custody generates, finds and destroys private keys. Implementations are
// safe for concurrent use.
type Custody interface {
	// Name is stored in every key record this custody holds.
	Name() string
	// Generate makes a key pair for alg (rsaBits for RS256 and PS256). kid
	// computes the key's id from its public half; the store custody binds
	// its sealed bytes to it. A key generated and never committed to the
	// store is an orphan: it must never sign, and Orphans finds it.
	Generate(ctx context.Context, alg string, rsaBits int, kid func(crypto.PublicKey) (string, error)) (Key, error)
	// Load returns the signer of a stored key.
	Load(ctx context.Context, kid, alg string, handle []byte) (crypto.Signer, error)
	// Destroy deletes the private half. Destroying what is already gone
	// is not an error: a crash between a purge's commit and its destroy
	// repeats it.
	Destroy(ctx context.Context, kid string, handle []byte) error
}

// Object is a private key an external custody holds.
type Object struct {
	Handle  []byte    `json:"handle"`
	Label   string    `json:"label"`
	Alg     string    `json:"alg,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// Lister is a Custody whose objects can be listed, so that keys generated
// but never committed (a crash, a fenced leader) are found: keys.Orphans.
type Lister interface {
	Objects(ctx context.Context) ([]Object, error)
}
