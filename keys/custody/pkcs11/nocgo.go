//go:build !cgo

package pkcs11

import (
	"context"
	"crypto"
	"errors"

	"github.com/signet-auth/signet/keys/custody"
)

// ErrNoCgo: PKCS#11 modules are C libraries, loaded through cgo. The static
// binary (scripts/build.sh, the container image) is built without cgo; a
// build with CGO_ENABLED=1 (the default wherever a C compiler is present)
// has PKCS#11 custody.
var ErrNoCgo = errors.New("pkcs11: this signet was built without cgo (CGO_ENABLED=0), and PKCS#11 modules need it: build with CGO_ENABLED=1")

// Custody is unavailable without cgo.
type Custody struct{}

// Open always fails without cgo.
func Open(Config) (*Custody, error) { return nil, ErrNoCgo }

func (*Custody) Close() error { return nil }
func (*Custody) Name() string { return Name }
func (*Custody) Generate(context.Context, string, int, func(crypto.PublicKey) (string, error)) (custody.Key, error) {
	return custody.Key{}, ErrNoCgo
}
func (*Custody) Load(context.Context, string, string, []byte) (crypto.Signer, error) {
	return nil, ErrNoCgo
}
func (*Custody) Destroy(context.Context, string, []byte) error { return ErrNoCgo }
func (*Custody) Objects(context.Context) ([]custody.Object, error) {
	return nil, ErrNoCgo
}
