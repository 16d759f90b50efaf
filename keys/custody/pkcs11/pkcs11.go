//go:build cgo

// Package pkcs11 is the PKCS#11 key custody: signing keys are generated
// inside a hardware security module (or SoftHSM2) as token objects with
// CKA_SENSITIVE true and CKA_EXTRACTABLE false, and every signature is a call
// into the module. Signet's store keeps the public key, the kid and the
// object's CKA_ID; the private half never leaves the module.
//
// Objects are labelled "signet:<unix seconds of generation>" so that
// orphans (generated, never committed) can be told apart by age, and so that
// other applications' objects on a shared token are never listed or touched.
package pkcs11

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ThalesGroup/crypto11"

	"github.com/signet-auth/signet/keys/custody"
)

// Custody holds keys in one PKCS#11 token.
type Custody struct {
	ctx  *crypto11.Context
	now  func() time.Time
	rand io.Reader
}

// Open logs in to the token. Close logs out.
func Open(cfg Config) (*Custody, error) {
	if cfg.Module == "" || cfg.TokenLabel == "" {
		return nil, errors.New("pkcs11: module and token label are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path: cfg.Module, TokenLabel: cfg.TokenLabel, Pin: cfg.PIN, PoolWaitTimeout: cfg.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: open token %q with %s: %w: %w", cfg.TokenLabel, cfg.Module, custody.ErrUnavailable, err)
	}
	return &Custody{ctx: ctx, now: cfg.Now, rand: cfg.Rand}, nil
}

// Close ends the sessions with the token.
func (c *Custody) Close() error { return c.ctx.Close() }

// Name is "pkcs11".
func (c *Custody) Name() string { return Name }

// Generate makes the key pair inside the token: crypto11 sets CKA_TOKEN,
// CKA_SENSITIVE and CKA_EXTRACTABLE=false on the private object. EdDSA is
// refused: PKCS#11 2.40 modules (SoftHSM2's crypto11 binding) have no
// Ed25519 signing that crypto11 exposes.
func (c *Custody) Generate(_ context.Context, alg string, rsaBits int, kidOf func(crypto.PublicKey) (string, error)) (custody.Key, error) {
	var s crypto11.Signer
	var id []byte
	var err error
	// A failed C_GenerateKeyPair creates no object (PKCS#11 §5.14), so a
	// refused generation is tried again under a new id: SoftHSM2 on
	// Debian 12 refuses some EC generations at random
	// (CKR_TEMPLATE_INCONSISTENT, CKR_GENERAL_ERROR).
	for attempt := 0; attempt < generateAttempts; attempt++ {
		if s, id, err = c.generateOnce(alg, rsaBits); err == nil || errors.Is(err, errUnsupported) {
			break
		}
	}
	if errors.Is(err, errUnsupported) {
		return custody.Key{}, fmt.Errorf("pkcs11: %s keys cannot be held in PKCS#11 custody (RS256, PS256, ES256, ES384, ES512 can)", alg)
	}
	if err != nil {
		return custody.Key{}, fmt.Errorf("pkcs11: generate %s: %w: %w", alg, custody.ErrUnavailable, err)
	}
	if _, err := kidOf(s.Public()); err != nil {
		// Not committed, so an orphan; try to leave none behind.
		_ = s.Delete()
		return custody.Key{}, err
	}
	return custody.Key{Signer: s, Handle: id}, nil
}

// generateAttempts bounds the tries of one key generation (see Generate).
const generateAttempts = 4

var errUnsupported = errors.New("algorithm not supported")

// generateOnce asks the token for one key pair of alg under a new random
// CKA_ID, labelled with the time (so orphans can be aged).
func (c *Custody) generateOnce(alg string, rsaBits int) (crypto11.Signer, []byte, error) {
	id := make([]byte, 16)
	if _, err := io.ReadFull(c.rand, id); err != nil {
		return nil, nil, fmt.Errorf("object id: %w", err)
	}
	label := []byte(labelPrefix + strconv.FormatInt(c.now().Unix(), 10))
	var s crypto11.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		s, err = c.ctx.GenerateRSAKeyPairWithLabel(id, label, rsaBits)
	case "ES256":
		s, err = c.ctx.GenerateECDSAKeyPairWithLabel(id, label, elliptic.P256())
	case "ES384":
		s, err = c.ctx.GenerateECDSAKeyPairWithLabel(id, label, elliptic.P384())
	case "ES512":
		s, err = c.ctx.GenerateECDSAKeyPairWithLabel(id, label, elliptic.P521())
	default:
		return nil, nil, errUnsupported
	}
	return s, id, err
}

// Load finds the key pair whose CKA_ID is handle.
func (c *Custody) Load(_ context.Context, kid, _ string, handle []byte) (crypto.Signer, error) {
	s, err := c.ctx.FindKeyPair(handle, nil)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: find key %s: %w: %w", kid, custody.ErrUnavailable, err)
	}
	if s == nil {
		return nil, fmt.Errorf("pkcs11: key %s (object id %x) is not in the token", kid, handle)
	}
	return s, nil
}

// Destroy deletes the key pair whose CKA_ID is handle, if it is there.
func (c *Custody) Destroy(_ context.Context, kid string, handle []byte) error {
	s, err := c.ctx.FindKeyPair(handle, nil)
	if err != nil {
		return fmt.Errorf("pkcs11: find key %s: %w: %w", kid, custody.ErrUnavailable, err)
	}
	if s == nil {
		return nil
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("pkcs11: destroy key %s (object id %x): %w", kid, handle, err)
	}
	return nil
}

// Objects lists the key pairs Signet generated in the token.
func (c *Custody) Objects(context.Context) ([]custody.Object, error) {
	all, err := c.ctx.FindAllKeyPairs()
	if err != nil {
		return nil, fmt.Errorf("pkcs11: list objects: %w: %w", custody.ErrUnavailable, err)
	}
	var out []custody.Object
	for _, s := range all {
		attrs, err := c.ctx.GetAttributes(s, []crypto11.AttributeType{crypto11.CkaId, crypto11.CkaLabel})
		if err != nil {
			return nil, fmt.Errorf("pkcs11: read object attributes: %w", err)
		}
		var id []byte
		var label string
		if a := attrs[crypto11.CkaId]; a != nil {
			id = a.Value
		}
		if a := attrs[crypto11.CkaLabel]; a != nil {
			label = string(a.Value)
		}
		ts, ok := strings.CutPrefix(label, labelPrefix)
		if !ok {
			continue // not ours
		}
		o := custody.Object{Handle: id, Label: label}
		if sec, err := strconv.ParseInt(ts, 10, 64); err == nil {
			o.Created = time.Unix(sec, 0).UTC()
		}
		out = append(out, o)
	}
	return out, nil
}
