package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/jwks"
)

// waitFile polls until path holds something other than old (a test
// deadline, not a sleep that hides a race: the export loop writes within
// a second of a change).
func waitFile(t *testing.T, path string, old []byte) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 && !bytes.Equal(b, old) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not (re)written within 10s (err %v)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJWKSExport_Serve: with jwks.export.file set, signet serve writes the
// signed set and its pins; a verifier that loads them from files accepts
// the server's tokens; after a revocation the file is rewritten without the
// key, the verifier reloads and refuses the revoked key's tokens, and the
// old file put back (a replay) is refused.
func TestJWKSExport_Serve(t *testing.T) {
	var export string
	c := testConfig(t, func(c *config.Config) {
		export = filepath.Join(c.DataDir, "jwks.jws")
		c.JWKS.Export.File = export
	})
	m, _ := startMain(t, c, nil)
	first := waitFile(t, export, nil)
	pins := waitFile(t, export+".signers", nil)

	if _, _, err := m.Server.Clients().Create(t.Context(), clients.Client{ID: "svc", Scopes: []string{"signet:admin"}, Audiences: []string{"signet-admin"}}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := m.Server.Clients().RotateSecret(t.Context(), "svc", 0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := issueToken(t.Context(), m.URL(), "svc", secret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwks.NewSignedSetVerifier(t.Context(), m.Config.Issuer, export, jwks.SignedSetOptions{Pins: pins},
		jwks.WithAudience("signet-admin"), jwks.WithInsecureHTTP())
	if err != nil {
		t.Fatalf("load the exported set: %v", err)
	}
	defer v.Close()
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("token verified against the exported set: %v", err)
	}

	active := m.Keys.Current()[0]
	if err := m.Keys.Revoke(t.Context(), active.KID); err != nil {
		t.Fatal(err)
	}
	waitFile(t, export, first)
	if err := v.ReloadSignedSet(t.Context()); err != nil {
		t.Fatalf("reload after the revocation: %v", err)
	}
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("revoked key's token after reload: %v, want ErrUnknownKey", err)
	}
	if err := os.WriteFile(export, first, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := v.ReloadSignedSet(t.Context()); !errors.Is(err, jwks.ErrSignedSet) || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("the set from before the revocation put back: %v, want a refusal naming the replay", err)
	}
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("after the old set was put back, the revoked key's token: %v", err)
	}
}

// TestRun_JWKSExport_Offline: `signet jwks signers` prints the pins,
// `signet jwks export --out` writes a set they verify, a second export gets
// a strictly newer iat (so verifiers take it), and `signet jwks signers
// --rotate` moves signing to the key that was pinned as pending, which the
// old pins still accept.
func TestRun_JWKSExport_Offline(t *testing.T) {
	c := testConfig(t, nil)
	m, _ := startMain(t, c, nil)
	m.Close()
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	cli := func(args ...string) []byte {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(t.Context(), append(args, "--data-dir", c.DataDir), &out, &errOut); code != 0 {
			t.Fatalf("signet %v: code %d: %s", args, code, errOut.String())
		}
		return out.Bytes()
	}
	pins := cli("jwks", "signers")
	file := filepath.Join(t.TempDir(), "jwks.jws")
	cli("jwks", "export", "--out", file, "--ttl", "1h")
	// --data-dir alone: no issuer configured, so the one made from the
	// default http.addr.
	v, err := jwks.NewSignedSetVerifier(t.Context(), config.IssuerFor(config.Default().HTTP.Addr), file, jwks.SignedSetOptions{Pins: pins},
		jwks.WithAudience("x"), jwks.WithInsecureHTTP())
	if err != nil {
		t.Fatalf("load the exported set: %v", err)
	}
	first := v.SignedSetIssuedAt()
	cli("jwks", "signers", "--rotate")
	cli("jwks", "export", "--out", file)
	if err := v.ReloadSignedSet(t.Context()); err != nil {
		t.Fatalf("set signed by the rotated (previously pending) signer: %v", err)
	}
	if !v.SignedSetIssuedAt().After(first) {
		t.Errorf("second export iat %v is not after the first %v", v.SignedSetIssuedAt(), first)
	}
	// The pins now hold the new active and a new pending signer, not the
	// retired one: a verifier given them refuses a set the old signer made.
	var newPins struct{ Keys []map[string]any }
	if err := json.Unmarshal(cli("jwks", "signers"), &newPins); err != nil || len(newPins.Keys) != 2 {
		t.Fatalf("pins after a rotation: %v, %d keys, want 2 (active, pending)", err, len(newPins.Keys))
	}
	var oldPins struct{ Keys []map[string]any }
	_ = json.Unmarshal(pins, &oldPins)
	if len(oldPins.Keys) != 2 {
		t.Fatalf("first pins hold %d keys, want 2 (active, pending)", len(oldPins.Keys))
	}
	fresh := 0
	for _, k := range newPins.Keys {
		if k["kid"] != oldPins.Keys[0]["kid"] && k["kid"] != oldPins.Keys[1]["kid"] {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("the new pins hold %d keys not pinned before, want 1 (the new pending signer)", fresh)
	}
	var errOut bytes.Buffer
	if code := run(t.Context(), []string{"keys", "orphans", "--data-dir", c.DataDir}, io.Discard, &errOut); code == 0 || !strings.Contains(errOut.String(), "keys.custody") {
		t.Errorf("keys orphans without a custody: code %d, %q", code, errOut.String())
	}
}
