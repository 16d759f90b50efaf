package keys

import "crypto/rand"

// SealSecret encrypts another package's secret under the KEK with the
// private keys' format (AES-256-GCM, version byte, random nonce); aad binds
// the ciphertext to its record (a user's TOTP secret names the user), so a
// sealed value copied onto another record does not open.
func SealSecret(kek []byte, aad string, plaintext []byte) ([]byte, error) {
	return seal(rand.Reader, kek, aad, plaintext)
}

// OpenSecret reverses SealSecret; a wrong KEK or aad is ErrDecrypt.
func OpenSecret(kek []byte, aad string, sealed []byte) ([]byte, error) {
	return open(kek, aad, sealed)
}
