package federation

import (
	"crypto/sha256"
	"sync"
	"time"
)

// verifiedWindow is how long a token whose signature verified is taken as
// verified again without the check. The jwt-bearer grant reads its
// assertion twice in one request (once to authenticate the client, once
// to issue), and each signature check is an ECDSA or RSA verification,
// the largest cost of the grant; a second suffices to cover one request.
// It is sound for any window shorter than the key set's cache: the check
// is a pure function of the token's bytes and the issuer's keys.
const verifiedWindow = time.Second

// verifiedMax bounds the remembered tokens; past it the oldest half is
// forgotten (each is checked again, nothing is refused for it).
const verifiedMax = 1024

// verifiedTokens remembers, by SHA-256 of the whole token, the tokens
// whose signature verified in the last verifiedWindow. Safe for
// concurrent use.
type verifiedTokens struct {
	mu sync.Mutex
	at map[[sha256.Size]byte]time.Time
}

// seen reports whether tok verified within the window before now.
func (v *verifiedTokens) seen(tok string, now time.Time) bool {
	k := sha256.Sum256([]byte(tok))
	v.mu.Lock()
	defer v.mu.Unlock()
	at, ok := v.at[k]
	return ok && !now.Before(at) && now.Sub(at) < verifiedWindow
}

// add records that tok verified at now.
func (v *verifiedTokens) add(tok string, now time.Time) {
	k := sha256.Sum256([]byte(tok))
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.at == nil {
		v.at = map[[sha256.Size]byte]time.Time{}
	}
	if len(v.at) >= verifiedMax {
		for key, at := range v.at {
			if now.Sub(at) >= verifiedWindow || len(v.at) > verifiedMax/2 {
				delete(v.at, key)
			}
		}
	}
	v.at[k] = now
}
