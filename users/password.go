package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// PasswordParams are the argon2id parameters new password hashes use. They
// are written into each hash (PHC string format), so changing them affects
// new and rehashed passwords only; a stored hash always verifies with its
// own parameters, and a successful login with older parameters rehashes.
type PasswordParams struct {
	// Memory in KiB; default 19456 (19 MiB, the OWASP minimum for argon2id).
	Memory uint32
	// Time is the number of passes; default 2.
	Time uint32
	// Threads is the parallelism; default 1.
	Threads uint8
}

// Default argon2id parameters (OWASP Password Storage Cheat Sheet: m=19 MiB,
// t=2, p=1). Salt 16 bytes, key 32 bytes.
const (
	DefaultPasswordMemory  = 19 * 1024
	DefaultPasswordTime    = 2
	DefaultPasswordThreads = 1

	passwordSaltLen = 16
	passwordKeyLen  = 32
	// Bounds on what a stored (possibly imported) hash may ask for, so
	// that one record cannot make every login of that user cost seconds
	// or gigabytes.
	maxPasswordMemory  = 1 << 20 // 1 GiB
	maxPasswordTime    = 16
	maxPasswordThreads = 16
	// maxPasswordLen bounds the input to the hash (bcrypt itself stops at 72 bytes).
	maxPasswordLen = 1024
)

// ErrUnsupportedHash is returned for a password hash that is neither
// argon2id (PHC string) nor bcrypt.
var ErrUnsupportedHash = errors.New("users: unsupported password hash")

// ApplyDefaults sets the zero parameters to their defaults.
func (p *PasswordParams) ApplyDefaults() {
	if p.Memory == 0 {
		p.Memory = DefaultPasswordMemory
	}
	if p.Time == 0 {
		p.Time = DefaultPasswordTime
	}
	if p.Threads == 0 {
		p.Threads = DefaultPasswordThreads
	}
}

// Validate checks the parameters are within the bounds a stored hash may
// ask for.
func (p PasswordParams) Validate() error {
	if p.Memory < 8*uint32(p.Threads) || p.Memory > maxPasswordMemory {
		return fmt.Errorf("password memory %d KiB: want 8*threads to %d", p.Memory, maxPasswordMemory)
	}
	if p.Time < 1 || p.Time > maxPasswordTime {
		return fmt.Errorf("password time %d: want 1 to %d", p.Time, maxPasswordTime)
	}
	if p.Threads < 1 || p.Threads > maxPasswordThreads {
		return fmt.Errorf("password threads %d: want 1 to %d", p.Threads, maxPasswordThreads)
	}
	return nil
}

// HashPassword returns the argon2id PHC string of password:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key> (unpadded standard base64).
func HashPassword(password string, p PasswordParams) string {
	p.ApplyDefaults()
	salt := make([]byte, passwordSaltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go 1.24+)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, passwordKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// phc is a parsed argon2id hash.
type phc struct {
	params    PasswordParams
	salt, key []byte
}

func parseArgon2id(s string) (phc, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return phc{}, ErrUnsupportedHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, fmt.Errorf("%w: argon2 version %q", ErrUnsupportedHash, parts[2])
	}
	var h phc
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return phc{}, fmt.Errorf("%w: parameter %q", ErrUnsupportedHash, kv)
		}
		switch k {
		case "m":
			h.params.Memory = uint32(n)
		case "t":
			h.params.Time = uint32(n)
		case "p":
			if n > 255 {
				return phc{}, fmt.Errorf("%w: parameter %q", ErrUnsupportedHash, kv)
			}
			h.params.Threads = uint8(n)
		default:
			return phc{}, fmt.Errorf("%w: parameter %q", ErrUnsupportedHash, kv)
		}
	}
	if err := h.params.Validate(); err != nil {
		return phc{}, fmt.Errorf("%w: %w", ErrUnsupportedHash, err)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return phc{}, fmt.Errorf("%w: salt", ErrUnsupportedHash)
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return phc{}, fmt.Errorf("%w: key", ErrUnsupportedHash)
	}
	return h, nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// checkHashFormat accepts what a stored hash may be: argon2id within bounds,
// or bcrypt (import only; rehashed to argon2id at the next login).
func checkHashFormat(s string) error {
	if isBcrypt(s) {
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return fmt.Errorf("%w: %w", ErrUnsupportedHash, err)
		}
		return nil
	}
	_, err := parseArgon2id(s)
	return err
}

// VerifyPassword reports whether password matches hash, and whether the
// hash should be replaced by one with the current parameters. An unusable
// hash never matches.
func VerifyPassword(hash, password string, current PasswordParams) (ok, rehash bool) {
	if len(password) > maxPasswordLen {
		return false, false
	}
	if isBcrypt(hash) {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, true
	}
	h, err := parseArgon2id(hash)
	if err != nil {
		return false, false
	}
	key := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.Memory, h.params.Threads, uint32(len(h.key)))
	ok = subtle.ConstantTimeCompare(key, h.key) == 1
	return ok, ok && h.params != current
}
