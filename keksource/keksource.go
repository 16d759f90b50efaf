// Package keksource is the key-encryption key: where it comes from (SIGNET_KEK
// or a file), reading and checking it, creating it on the zero-config first
// start, the errors that say which one is in use, and the keys derived
// from it for other purposes (HKDF).
package keksource

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/datadir"
	"github.com/signet-auth/signet/keys"
)

// Source is where the key-encryption key comes from: the SIGNET_KEK
// variable or a file. Errors about the KEK name the one in use.
type Source struct {
	env  bool   // SIGNET_KEK is set
	path string // the file otherwise
}

// Of says which source the configuration and environment use.
func Of(c *config.Config, getenv func(string) string) Source {
	if getenv("SIGNET_KEK") != "" {
		return Source{env: true}
	}
	return Source{path: c.KEKPath()}
}

// String names the source as errors do.
func (s Source) String() string {
	if s.env {
		return "SIGNET_KEK"
	}
	return "keys.encryption_key_file " + s.path
}

// Read reads the key-encryption key without writing anything: from
// SIGNET_KEK (base64 of 32 bytes), else from keys.encryption_key_file
// (default DATA_DIR/kek), refusing a file other users can read. It returns
// a nil key and no error only when the default file does not exist yet,
// which Resolve may then create for an empty store.
func Read(c *config.Config, getenv func(string) string) ([]byte, error) {
	src := Of(c, getenv)
	if src.env {
		k, err := Decode(getenv("SIGNET_KEK"))
		if err != nil {
			return nil, fmt.Errorf("SIGNET_KEK: %w", err)
		}
		return k, nil
	}
	path := src.path
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := CheckMode(path); err != nil {
			return nil, err
		}
		k, err := Decode(string(b))
		if err != nil {
			return nil, fmt.Errorf("keys.encryption_key_file %s: %w", path, err)
		}
		return k, nil
	case errors.Is(err, fs.ErrPermission):
		return nil, datadir.PermissionError("keys.encryption_key_file", path, err, datadir.CurrentUser())
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("keys.encryption_key_file %s: %w", path, err)
	case c.Storage.Backend == "etcd":
		return nil, errShared(path)
	case c.Keys.EncryptionKeyFile != "":
		return nil, fmt.Errorf("keys.encryption_key_file %s does not exist: create it (openssl rand -base64 32 > %s; chmod 600 %s), set SIGNET_KEK, or unset the field to use %s",
			path, path, path, filepath.Join(c.DataDir, "kek"))
	}
	return nil, nil
}

// CheckMode refuses a KEK file that other users can read; a missing
// file is not its concern.
func CheckMode(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("keys.encryption_key_file %s: mode %v lets other users read it: run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	return nil
}

// Resolve finds the key-encryption key as Read does. For the
// zero-config first run only (default path, empty store) it creates that
// file with mode 0600 and says so. It never creates a KEK for a store that
// already has keys: that would orphan them.
func Resolve(ctx context.Context, c *config.Config, getenv func(string) string, storeEmpty bool, log *slog.Logger) ([]byte, error) {
	k, err := Read(c, getenv)
	if err != nil || k != nil {
		return k, err
	}
	path := c.KEKPath()
	if !storeEmpty {
		return nil, fmt.Errorf("the store has keys but no key-encryption key was found at %s: restore that file, or set SIGNET_KEK or keys.encryption_key_file to the KEK the keys were made with", path)
	}
	k = make([]byte, keys.KEKSize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate key-encryption key: %w", err)
	}
	if err := datadir.WritePrivateFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n")); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, datadir.PermissionError("key-encryption key file", path, err, datadir.CurrentUser())
		}
		return nil, fmt.Errorf("write key-encryption key %s: %w", path, err)
	}
	log.LogAttrs(ctx, slog.LevelWarn, "created a new key-encryption key file; back it up: without it the signing keys cannot be read",
		slog.String("path", path))
	return k, nil
}

// Explain adds to a key-decryption failure which KEK was used and what
// to do; other errors pass through.
func Explain(err error, c *config.Config, getenv func(string) string) error {
	var de *keys.DecryptError
	if !errors.As(err, &de) {
		return err
	}
	src := Of(c, getenv)
	if src.env {
		return fmt.Errorf("%w: the key-encryption key in SIGNET_KEK is not the one this store was made with; "+
			"set SIGNET_KEK to the original, or unset it to use keys.encryption_key_file %s", err, c.KEKPath())
	}
	return fmt.Errorf("%w: the key-encryption key in %s (keys.encryption_key_file) is not the one this store was made with; "+
		"restore the original file there, or set SIGNET_KEK to the original", err, src.path)
}

// Decode reads the base64 (standard or URL-safe) of keys.KEKSize bytes.
func Decode(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		k, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	}
	if err != nil {
		return nil, errors.New("not base64: expected the base64 of 32 random bytes (openssl rand -base64 32)")
	}
	if len(k) != keys.KEKSize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d (openssl rand -base64 32)", len(k), keys.KEKSize)
	}
	return k, nil
}

// feedSubjectInfo is the HKDF info (purpose label) of the revocation
// feed's subject key.
const feedSubjectInfo = "signet revocation feed subject hmac v1"

// FeedSubjectKey derives the key of the revocation feed's subject hashes
// from the KEK: every replica (they share the KEK) lists the same hashes,
// and `signet keys feed-key` prints it for the verifiers. The KEK itself
// never leaves: HKDF is one-way.
func FeedSubjectKey(kek []byte) []byte {
	if len(kek) == 0 {
		return nil
	}
	return Subkey(kek, feedSubjectInfo)
}

// DPoPNonceInfo is the HKDF info of the key of DPoP nonces (dpop.nonce).
const DPoPNonceInfo = "signet dpop nonce hmac v1"

// Subkey derives a 32-byte key for purpose info from the KEK (HKDF).
func Subkey(kek []byte, info string) []byte {
	// hkdf.Key fails only for a length above 255 hashes; this is one.
	k, _ := hkdf.Key(sha256.New, kek, nil, info, sha256.Size)
	return k
}

// errShared is why Signet never creates a KEK for an etcd store: every
// replica would create its own, and none could read the others' keys.
func errShared(path string) error {
	return fmt.Errorf("storage.backend etcd: no key-encryption key (SIGNET_KEK unset, no file at %s): "+
		"every replica needs the same one, so Signet does not create it; "+
		"make one (openssl rand -base64 32) and give it to every replica as SIGNET_KEK or keys.encryption_key_file", path)
}
