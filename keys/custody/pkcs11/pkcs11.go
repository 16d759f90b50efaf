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
	"sync"
	"time"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"

	"github.com/signet-auth/signet/keys/custody"
)

// Custody holds keys in one PKCS#11 token.
type Custody struct {
	cfg  Config
	ctx  *crypto11.Context
	now  func() time.Time
	rand io.Reader
	// objects orders the calls that change the token's objects
	// (generate, destroy: Lock) against the calls that search them
	// (RLock). SoftHSM2's file store fails a key generation at random
	// (CKR_GENERAL_ERROR, CKR_TEMPLATE_INCONSISTENT) when another session
	// of the process searches the objects while the new ones are being
	// written, and a failed generation can leave a private-key object
	// with neither id nor label. Signing needs no lock: it was never seen
	// to interfere.
	objects sync.RWMutex
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
	return &Custody{cfg: cfg, ctx: ctx, now: cfg.Now, rand: cfg.Rand}, nil
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
	// A refused generation is tried again under a new id: a module may
	// refuse one for a passing reason (a full session pool, a busy
	// network HSM).
	c.objects.Lock()
	defer c.objects.Unlock()
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
	c.objects.RLock()
	defer c.objects.RUnlock()
	s, err := c.find(kid, handle)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("pkcs11: key %s (object id %x) is not in the token", kid, handle)
	}
	return s, nil
}

// find is the key pair whose CKA_ID is handle, or nil when the token has
// none. (crypto11's FindKeyPair answers an error for "none", which cannot
// be told apart from a token that failed.)
func (c *Custody) find(kid string, handle []byte) (crypto11.Signer, error) {
	all, err := c.ctx.FindKeyPairs(handle, nil)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: find key %s: %w: %w", kid, custody.ErrUnavailable, err)
	}
	if len(all) == 0 {
		return nil, nil
	}
	return all[0], nil
}

// Destroy deletes the key pair whose CKA_ID is handle, if it is there.
func (c *Custody) Destroy(_ context.Context, kid string, handle []byte) error {
	c.objects.Lock()
	defer c.objects.Unlock()
	s, err := c.find(kid, handle)
	if err != nil {
		return err
	}
	if s == nil {
		return nil
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("pkcs11: destroy key %s (object id %x): %w", kid, handle, err)
	}
	return nil
}

// Objects lists the key objects Signet generated in the token, and the
// private-key objects that have neither id nor label: a key generation
// interrupted by a crash (SoftHSM2 writes a new object's attributes after
// creating it) leaves one, which crypto11 refuses to list at all. Those are
// listed with no handle and no creation time, so they are reported but never
// destroyed by Signet (nothing proves they are its own).
//
// The listing reads the objects through a session of its own (the
// library is the one crypto11 loaded and initialised; the login is the
// token's, shared by every session of the process), so one unusable object
// cannot hide the others.
func (c *Custody) Objects(context.Context) ([]custody.Object, error) {
	c.objects.RLock()
	defer c.objects.RUnlock()
	p := p11.New(c.cfg.Module)
	if p == nil {
		return nil, fmt.Errorf("pkcs11: list objects: load %s: %w", c.cfg.Module, custody.ErrUnavailable)
	}
	defer p.Destroy() // unloads only this reference; crypto11 holds its own
	if err := p.Initialize(); err != nil && !errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return nil, fmt.Errorf("pkcs11: list objects: %w: %w", custody.ErrUnavailable, err)
	}
	session, err := c.session(p)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: list objects: %w: %w", custody.ErrUnavailable, err)
	}
	defer p.CloseSession(session)
	seen := map[string]bool{}
	var out []custody.Object
	for _, class := range []uint{p11.CKO_PRIVATE_KEY, p11.CKO_PUBLIC_KEY} {
		handles, err := findAll(p, session, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, class)})
		if err != nil {
			return nil, fmt.Errorf("pkcs11: list objects: %w: %w", custody.ErrUnavailable, err)
		}
		for _, h := range handles {
			attrs, err := p.GetAttributeValue(session, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, nil), p11.NewAttribute(p11.CKA_LABEL, nil)})
			if err != nil {
				return nil, fmt.Errorf("pkcs11: read object attributes: %w", err)
			}
			id, label := attrs[0].Value, string(attrs[1].Value)
			if len(id) == 0 && label == "" {
				if class == p11.CKO_PRIVATE_KEY {
					out = append(out, custody.Object{Label: ""})
				}
				continue
			}
			ts, ok := strings.CutPrefix(label, labelPrefix)
			if !ok || seen[string(id)] {
				continue // not ours, or the other half of a pair listed
			}
			seen[string(id)] = true
			o := custody.Object{Handle: id, Label: label}
			if sec, err := strconv.ParseInt(ts, 10, 64); err == nil {
				o.Created = time.Unix(sec, 0).UTC()
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// session opens a read-only session on the configured token, logged in.
func (c *Custody) session(p *p11.Ctx) (p11.SessionHandle, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, err
	}
	for _, slot := range slots {
		info, err := p.GetTokenInfo(slot)
		if err != nil || strings.TrimRight(info.Label, " \x00") != c.cfg.TokenLabel {
			continue
		}
		s, err := p.OpenSession(slot, p11.CKF_SERIAL_SESSION)
		if err != nil {
			return 0, err
		}
		// Logging out would end crypto11's login too: the login belongs to
		// the process and the token, not to a session.
		if err := p.Login(s, p11.CKU_USER, c.cfg.PIN); err != nil && !errors.Is(err, p11.Error(p11.CKR_USER_ALREADY_LOGGED_IN)) {
			_ = p.CloseSession(s)
			return 0, err
		}
		return s, nil
	}
	return 0, fmt.Errorf("no token labelled %q", c.cfg.TokenLabel)
}

// findAll is every object matching template.
func findAll(p *p11.Ctx, s p11.SessionHandle, template []*p11.Attribute) ([]p11.ObjectHandle, error) {
	if err := p.FindObjectsInit(s, template); err != nil {
		return nil, err
	}
	var all []p11.ObjectHandle
	for {
		batch, _, err := p.FindObjects(s, 256)
		if err != nil {
			_ = p.FindObjectsFinal(s)
			return nil, err
		}
		all = append(all, batch...)
		if len(batch) == 0 {
			break
		}
	}
	return all, p.FindObjectsFinal(s)
}
