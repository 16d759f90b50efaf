package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// KEKSize is the size of the key-encryption key: AES-256.
const KEKSize = 32

// sealVersion is the first byte of every sealed private key, so the format
// can change later without guessing.
const sealVersion = 1

// ErrDecrypt means a private key could not be opened with the configured KEK.
var ErrDecrypt = errors.New("wrong key-encryption key or corrupt record")

// seal encrypts plaintext with AES-256-GCM under kek. The kid is the
// additional data, so a ciphertext moved onto another record fails to open.
// Layout: version(1) || nonce(12) || ciphertext+tag.
func seal(rand io.Reader, kek []byte, kid string, plaintext []byte) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	if _, err := io.ReadFull(rand, out[1:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, []byte(kid)), nil
}

// open reverses seal.
func open(kek []byte, kid string, sealed []byte) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrDecrypt
	}
	nonce := sealed[1 : 1+aead.NonceSize()]
	pt, err := aead.Open(nil, nonce, sealed[1+aead.NonceSize():], []byte(kid))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("keys: key-encryption key is %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("keys: kek: %w", err)
	}
	return cipher.NewGCM(block)
}
