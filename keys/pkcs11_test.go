//go:build pkcs11

package keys_test

import (
	"crypto"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	mp11 "github.com/miekg/pkcs11"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/custody"
	"github.com/signet-auth/signet/keys/custody/pkcs11"
	"github.com/signet-auth/signet/keys/custody/pkcs11/softhsmtest"
	"github.com/signet-auth/signet/storage"
)

// hsmAlgs are the algorithms PKCS#11 custody holds in these tests.
var hsmAlgs = []string{"RS256", "PS256", "ES256"}

func hsmCustody(c custody.Custody) map[string]custody.Custody {
	m := map[string]custody.Custody{}
	for _, a := range hsmAlgs {
		m[a] = c
	}
	return m
}

// signAndVerify signs with the manager's active key of alg and verifies the
// signature against the published set, with the algorithm from the key.
func signAndVerify(t *testing.T, m *keys.Manager, alg string) string {
	t.Helper()
	k, err := m.SigningKey(alg)
	if err != nil {
		t.Fatalf("SigningKey(%s): %v", alg, err)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	if _, inMemory := raw.(interface{ Equal(crypto.PrivateKey) bool }); inMemory {
		t.Fatalf("%s: the signing key is an in-memory %T, want the token's signer", alg, raw)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, k.KeyID())
	msg, err := jws.Sign([]byte(`{"sub":"x"}`), jws.WithKey(jwa.SignatureAlgorithm(alg), raw, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("sign %s through the token: %v", alg, err)
	}
	set, _ := m.PublicSet()
	if _, err := jws.Verify(msg, jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
		t.Fatalf("verify %s against the published set: %v", alg, err)
	}
	return k.KeyID()
}

func objectCount(t *testing.T, c *pkcs11.Custody) int {
	t.Helper()
	objs, err := c.Objects(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// TestPKCS11_RotateRevokePurge: with PKCS#11 custody on a real SoftHSM2
// token, keys are generated in the token, sign through it, rotate, revoke
// (emergency promotion) and purge exactly as in-store keys do; the store
// holds no private material; the purge destroys the token's objects.
func TestPKCS11_RotateRevokePurge(t *testing.T) {
	hsm := softhsmtest.Open(t, "signet-rotate")
	st, _ := openStore(t)
	clk := newClock()
	ttl, leeway := time.Hour, 5*time.Minute
	m := openManager(t, st, keys.Options{Algorithms: append(hsmAlgs, "EdDSA"), Custody: hsmCustody(hsm),
		MaxTokenTTL: ttl, PurgeLeeway: leeway, Now: clk.Now})

	for _, info := range m.Current() {
		want := "pkcs11"
		if info.Alg == "EdDSA" {
			want = "" // not configured for the token: the sealed store
		}
		if info.Custody != want {
			t.Errorf("%s key %s custody %q, want %q", info.Alg, info.KID, info.Custody, want)
		}
	}
	if n := objectCount(t, hsm); n != 2*len(hsmAlgs) {
		t.Fatalf("token holds %d key pairs, want %d (active + pending per algorithm)", n, 2*len(hsmAlgs))
	}
	first := map[string]string{}
	for _, alg := range hsmAlgs {
		first[alg] = signAndVerify(t, m, alg)
	}

	clk.Add(time.Minute)
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	for _, alg := range hsmAlgs {
		if kid := signAndVerify(t, m, alg); kid == first[alg] {
			t.Errorf("%s: rotation kept the signer %s", alg, kid)
		}
	}
	// Retired keys keep their object until the purge: 3 per algorithm now.
	if n := objectCount(t, hsm); n != 3*len(hsmAlgs) {
		t.Fatalf("after rotation the token holds %d key pairs, want %d", n, 3*len(hsmAlgs))
	}

	active, _ := m.SigningKey("ES256")
	if err := m.Revoke(t.Context(), active.KeyID()); err != nil {
		t.Fatal(err)
	}
	if kid := signAndVerify(t, m, "ES256"); kid == active.KeyID() {
		t.Fatal("revoked key still signs")
	}
	if publishedKIDs(m)[active.KeyID()] {
		t.Error("revoked key still published")
	}

	// Nothing private in the store: every token-held record has a handle and
	// no sealed private key.
	err := st.View(t.Context(), func(tx storage.Tx) error {
		return tx.Scan(keys.Bucket, "", func(kid string, v []byte) error {
			var rec map[string]any
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec["custody"] == "pkcs11" && (rec["private"] != nil || rec["handle"] == nil) {
				t.Errorf("record %s: private=%v handle=%v, want a handle only", kid, rec["private"] != nil, rec["handle"])
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}

	before := objectCount(t, hsm)
	clk.Add(ttl + leeway + time.Second)
	n, err := m.Purge(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The retired keys (one per algorithm, EdDSA's in the store) and the
	// revoked ES256 key.
	if want := len(hsmAlgs) + 2; n != want {
		t.Fatalf("purged %d keys, want %d", n, want)
	}
	if after, want := objectCount(t, hsm), before-len(hsmAlgs)-1; after != want {
		t.Errorf("after the purge the token holds %d key pairs, want %d", after, want)
	}
	orphans, err := m.Orphans(t.Context())
	if err != nil || len(orphans) != 0 {
		t.Errorf("orphans after a clean run = %v, %v; want none", orphans, err)
	}
	for _, alg := range hsmAlgs {
		signAndVerify(t, m, alg)
	}
}

// TestPKCS11_CrashBeforeCommit: a rotation whose commit never happens (a
// crash, a full disk, a fenced leader) leaves key pairs in the token that no
// record names. They never sign; Orphans reports them; DestroyOrphans
// removes only those older than the given age.
func TestPKCS11_CrashBeforeCommit(t *testing.T) {
	clk := newClock()
	cfg := softhsmtest.NewToken(t, "signet-crash")
	cfg.Now = clk.Now // the labels carry the time of generation
	hsm, err := pkcs11.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Close()
	st, _ := openStore(t)
	fs := &failingStore{Store: st}
	m := openManager(t, fs, keys.Options{Algorithms: []string{"ES256"}, Custody: hsmCustody(hsm), Now: clk.Now})
	signer := signAndVerify(t, m, "ES256")

	fs.fail.Store(true)
	if err := m.Rotate(t.Context(), true); !errors.Is(err, errDiskFull) {
		t.Fatalf("Rotate on a failing store = %v", err)
	}
	fs.fail.Store(false)
	if kid := signAndVerify(t, m, "ES256"); kid != signer {
		t.Fatalf("after a failed rotation the signer is %s, want %s", kid, signer)
	}
	orphans, err := m.Orphans(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 1 || orphans[0].Custody != "pkcs11" || !strings.HasPrefix(orphans[0].Label, "signet:") {
		t.Fatalf("orphans = %+v, want the one key the failed rotation generated", orphans)
	}
	// Too young: a rotation on another replica may be about to commit it.
	gone, err := m.DestroyOrphans(t.Context(), time.Hour)
	if err != nil || len(gone) != 0 {
		t.Fatalf("DestroyOrphans(1h) = %v, %v; want nothing destroyed", gone, err)
	}
	clk.Add(time.Hour)
	gone, err = m.DestroyOrphans(t.Context(), time.Hour)
	if err != nil || len(gone) != 1 {
		t.Fatalf("DestroyOrphans(0) = %v, %v; want the orphan destroyed once an hour old", gone, err)
	}
	if n := objectCount(t, hsm); n != 2 {
		t.Errorf("token holds %d key pairs, want 2 (active, pending)", n)
	}
	clk.Add(time.Minute)
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	signAndVerify(t, m, "ES256")
}

// TestPKCS11_CustodyNotConfigured: a store whose keys live in a token cannot
// be opened without that custody, and the error names the config field; it
// never falls back to making in-store keys over them.
func TestPKCS11_CustodyNotConfigured(t *testing.T) {
	hsm := softhsmtest.Open(t, "signet-missing")
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256"}, Custody: hsmCustody(hsm)})
	m.Close()
	_, err := keys.Open(t.Context(), keys.Options{Store: st, KEK: testKEK(7), Algorithms: []string{"ES256"}})
	if err == nil || !strings.Contains(err.Error(), "keys.custody") {
		t.Fatalf("Open without the pkcs11 custody = %v, want an error naming keys.custody", err)
	}
}

// TestPKCS11_Migration: an in-store key set moves into the token by rotation:
// the next keys are generated there; existing keys stay where they are until
// they retire.
func TestPKCS11_Migration(t *testing.T) {
	hsm := softhsmtest.Open(t, "signet-migrate")
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256"}})
	m.Close()
	m = openManager(t, st, keys.Options{Algorithms: []string{"ES256"}, Custody: hsmCustody(hsm)})
	for _, i := range m.Current() {
		if i.Custody != "" {
			t.Fatalf("opening with a new custody moved key %s into %q", i.KID, i.Custody)
		}
	}
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	for _, i := range m.Current() {
		if (i.State == keys.StateActive || i.State == keys.StatePending) && i.Custody != "pkcs11" {
			t.Errorf("after two rotations %s key %s is in custody %q, want pkcs11", i.State, i.KID, i.Custody)
		}
	}
	signAndVerify(t, m, "ES256")
}

// TestPKCS11_NoExtractablePrivateKey reads every private-key object in the
// token through the PKCS#11 API itself (not Signet's code) after a
// rotation: each is sensitive, not extractable, was never extractable, and
// the token refuses to reveal its private value.
func TestPKCS11_NoExtractablePrivateKey(t *testing.T) {
	cfg := softhsmtest.NewToken(t, "signet-extract")
	hsm, err := pkcs11.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Close()
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: hsmAlgs, Custody: hsmCustody(hsm)})
	if err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}

	p, sh := rawSession(t, cfg)
	if err := p.FindObjectsInit(sh, []*mp11.Attribute{mp11.NewAttribute(mp11.CKA_CLASS, mp11.CKO_PRIVATE_KEY)}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := p.FindObjects(sh, 100)
	if err != nil {
		t.Fatal(err)
	}
	p.FindObjectsFinal(sh)
	if want := 3 * len(hsmAlgs); len(objs) != want {
		t.Fatalf("token holds %d private keys, want %d", len(objs), want)
	}
	for _, o := range objs {
		attrs, err := p.GetAttributeValue(sh, o, []*mp11.Attribute{
			mp11.NewAttribute(mp11.CKA_EXTRACTABLE, nil),
			mp11.NewAttribute(mp11.CKA_SENSITIVE, nil),
			mp11.NewAttribute(mp11.CKA_NEVER_EXTRACTABLE, nil),
			mp11.NewAttribute(mp11.CKA_ALWAYS_SENSITIVE, nil),
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[uint]bool{mp11.CKA_EXTRACTABLE: false, mp11.CKA_SENSITIVE: true, mp11.CKA_NEVER_EXTRACTABLE: true, mp11.CKA_ALWAYS_SENSITIVE: true}
		for _, a := range attrs {
			if got := len(a.Value) == 1 && a.Value[0] == 1; got != want[a.Type] {
				t.Errorf("object %d: attribute 0x%x = %v, want %v", o, a.Type, got, want[a.Type])
			}
		}
		for _, secret := range []uint{mp11.CKA_PRIVATE_EXPONENT, mp11.CKA_VALUE} {
			if v, err := p.GetAttributeValue(sh, o, []*mp11.Attribute{mp11.NewAttribute(secret, nil)}); err == nil && len(v) == 1 && len(v[0].Value) > 0 {
				t.Errorf("object %d: the token revealed attribute 0x%x (%d bytes)", o, secret, len(v[0].Value))
			}
		}
	}
}

// rawSession is a logged-in session on cfg's token through the PKCS#11 API
// itself, for reading and planting objects as another program would.
func rawSession(t *testing.T, cfg pkcs11.Config) (*mp11.Ctx, mp11.SessionHandle) {
	t.Helper()
	p := mp11.New(cfg.Module)
	if p == nil {
		t.Fatal("load module")
	}
	// crypto11 already initialised the module in this process.
	if err := p.Initialize(); err != nil && !errors.Is(err, mp11.Error(mp11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	var slot uint
	found := false
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == cfg.TokenLabel {
			slot, found = s, true
		}
	}
	if !found {
		t.Fatalf("token %q not found", cfg.TokenLabel)
	}
	sh, err := p.OpenSession(slot, mp11.CKF_SERIAL_SESSION|mp11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.CloseSession(sh) })
	if err := p.Login(sh, mp11.CKU_USER, cfg.PIN); err != nil && !errors.Is(err, mp11.Error(mp11.CKR_USER_ALREADY_LOGGED_IN)) {
		t.Fatal(err)
	}
	return p, sh
}

// TestPKCS11_UnnamedObjectReported: a private-key object with neither id nor
// label (what a key generation interrupted by a crash leaves in SoftHSM2's
// file store, and what crypto11 refuses to list at all) does not hide the
// real orphans: it is reported as an orphan, never destroyed, and the keys
// in use keep signing.
func TestPKCS11_UnnamedObjectReported(t *testing.T) {
	clk := newClock()
	cfg := softhsmtest.NewToken(t, "signet-unnamed")
	cfg.Now = clk.Now
	hsm, err := pkcs11.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Close()
	// An unnamed private key planted as another program would, before
	// Signet's manager runs: SoftHSM2's file store fails a write
	// (CKR_GENERAL_ERROR) when another session of the process searches
	// the objects meanwhile, and the manager's own searches are ordered
	// only against Signet's writes (pkcs11.Custody), not this raw session's
	// (the planting failed so once in CI).
	p, sh := rawSession(t, cfg)
	p256 := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	if _, err := p.CreateObject(sh, []*mp11.Attribute{
		mp11.NewAttribute(mp11.CKA_CLASS, mp11.CKO_PRIVATE_KEY),
		mp11.NewAttribute(mp11.CKA_KEY_TYPE, mp11.CKK_EC),
		mp11.NewAttribute(mp11.CKA_TOKEN, true),
		mp11.NewAttribute(mp11.CKA_EC_PARAMS, p256),
		mp11.NewAttribute(mp11.CKA_VALUE, []byte(strings.Repeat("\x01", 32))),
	}); err != nil {
		t.Fatalf("plant an unnamed object: %v", err)
	}
	st, _ := openStore(t)
	m := openManager(t, st, keys.Options{Algorithms: []string{"ES256"}, Custody: hsmCustody(hsm), Now: clk.Now})
	signAndVerify(t, m, "ES256")
	// A real orphan (generated, never committed).
	if _, err := hsm.Generate(t.Context(), "ES256", 0, func(crypto.PublicKey) (string, error) { return "x", nil }); err != nil {
		t.Fatal(err)
	}
	orphans, err := m.Orphans(t.Context())
	if err != nil {
		t.Fatalf("Orphans with an unnamed object in the token: %v", err)
	}
	var named, unnamed int
	for _, o := range orphans {
		switch {
		case o.Handle == nil && o.Label == "":
			unnamed++
		case strings.HasPrefix(o.Label, "signet:"):
			named++
		}
	}
	if named != 1 || unnamed != 1 || len(orphans) != 2 {
		t.Fatalf("orphans = %+v, want the generated key and the unnamed object", orphans)
	}
	clk.Add(time.Hour)
	gone, err := m.DestroyOrphans(t.Context(), time.Minute)
	if err != nil || len(gone) != 1 || gone[0].Handle == nil {
		t.Fatalf("DestroyOrphans = %+v, %v; want only the named orphan destroyed", gone, err)
	}
	if orphans, err := m.Orphans(t.Context()); err != nil || len(orphans) != 1 || orphans[0].Handle != nil {
		t.Fatalf("after DestroyOrphans: %+v, %v; want the unnamed object left alone", orphans, err)
	}
	signAndVerify(t, m, "ES256")
}
