package jwssign

import (
	"sync"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Source gives the active private key of an algorithm (*keys.Manager).
type Source interface {
	SigningKey(alg string) (jwk.Key, error)
}

// Cache keeps one prepared key per algorithm for one header typ, prepared
// again when the source's key of the algorithm changes (a rotation). The
// typ keeps token kinds apart: an ID token (JWT) must not be taken for an
// access token (at+jwt), nor either for a logout token (logout+jwt). The
// zero value is not usable: set Typ.
type Cache struct {
	Typ string

	mu sync.Mutex
	m  map[string]*Key // alg → key
}

// Get returns the prepared active key of alg.
func (kc *Cache) Get(src Source, alg string) (*Key, error) {
	jk, err := src.SigningKey(alg)
	if err != nil {
		return nil, err
	}
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if k := kc.m[alg]; k != nil && k.KID() == jk.KeyID() {
		return k, nil
	}
	k, err := Prepare(alg, kc.Typ, jk)
	if err != nil {
		return nil, err
	}
	if kc.m == nil {
		kc.m = map[string]*Key{}
	}
	kc.m[alg] = k
	return k, nil
}
