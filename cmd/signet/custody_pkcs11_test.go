//go:build pkcs11

package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/custody"
	"github.com/signet-auth/signet/keys/custody/pkcs11"
	"github.com/signet-auth/signet/keys/custody/pkcs11/softhsmtest"
	"github.com/signet-auth/signet/storeopen"
)

// TestPKCS11_Serve: signet serve configured with keys.custody.pkcs11 keeps
// its keys in a SoftHSM2 token and issues tokens signed there; offline,
// `signet keys rotate` works on the token, `signet keys list` warns about an
// orphan (a key pair a crashed rotation left), `signet keys orphans` lists
// it and `--destroy` removes it once it is older than --min-age.
func TestPKCS11_Serve(t *testing.T) {
	hsm := softhsmtest.NewToken(t, "signet-serve")
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(hsm.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, func(c *config.Config) {
		c.Keys.Algorithms = []string{"RS256", "ES256"}
		c.Keys.Custody.PKCS11 = config.PKCS11{Algorithms: []string{"RS256", "ES256"}, Module: hsm.Module, TokenLabel: hsm.TokenLabel, PINFile: pinFile}
		// The set-signing keys (ES256) go into the token too: they are
		// not orphans.
		c.JWKS.Export.File = filepath.Join(c.DataDir, "jwks.jws")
	})
	m, _ := startMain(t, c, nil)
	for _, k := range m.Keys.Current() {
		if k.Custody != pkcs11.Name {
			t.Errorf("key %s %s custody %q, want pkcs11", k.Alg, k.KID, k.Custody)
		}
	}
	if _, _, err := m.Server.Clients().Create(t.Context(), clients.Client{ID: "svc", Scopes: []string{"signet:admin"}, Audiences: []string{"signet-admin"}}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := m.Server.Clients().RotateSecret(t.Context(), "svc", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := issueToken(t.Context(), m.URL(), "svc", secret); err != nil {
		t.Fatalf("token signed in the HSM: %v", err)
	}
	waitFile(t, c.JWKS.Export.File, nil) // signed by the set-signing key in the token
	m.Close()

	// A rotation that crashed after generating in the token: an orphan an
	// hour old.
	old, err := pkcs11.Open(pkcs11.Config{Module: hsm.Module, TokenLabel: hsm.TokenLabel, PIN: hsm.PIN,
		Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Generate(context.Background(), "ES256", 0, func(crypto.PublicKey) (string, error) { return "x", nil }); err != nil {
		t.Fatal(err)
	}
	old.Close()

	cli := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(t.Context(), append(args, "--data-dir", c.DataDir), &out, &errOut); code != 0 {
			t.Fatalf("signet %v: code %d: %s", args, code, errOut.String())
		}
		return out.String(), errOut.String()
	}
	cfgPath := filepath.Join(t.TempDir(), "signet.yaml")
	yaml := "keys:\n  algorithms: [RS256, ES256]\n  custody:\n    pkcs11:\n      algorithms: [RS256, ES256]\n" +
		"      module: " + hsm.Module + "\n      token_label: " + hsm.TokenLabel + "\n      pin_file: " + pinFile + "\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIGNET_CONFIG", cfgPath)
	cli("keys", "rotate", "--force")
	if _, stderr := cli("keys", "list"); !strings.Contains(stderr, "1 orphan key") {
		t.Errorf("keys list did not warn about the orphan: %q", stderr)
	}
	out, _ := cli("keys", "orphans", "--json")
	var orphans []keys.Orphan
	if err := json.Unmarshal([]byte(out), &orphans); err != nil || len(orphans) != 1 {
		t.Fatalf("keys orphans --json: %v %s", err, out)
	}
	if out, _ := cli("keys", "orphans", "--destroy", "--min-age", "2h"); strings.Contains(out, orphans[0].Label) {
		t.Errorf("an orphan younger than --min-age was destroyed: %s", out)
	}
	if out, _ := cli("keys", "orphans", "--destroy", "--min-age", "30m"); !strings.Contains(out, orphans[0].Label) {
		t.Errorf("keys orphans --destroy did not report the orphan: %s", out)
	}
	if out, _ := cli("keys", "orphans", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("orphans after --destroy: %s", out)
	}
	if _, stderr := cli("keys", "list"); strings.Contains(stderr, "orphan") {
		t.Errorf("keys list still warns: %q", stderr)
	}
}

// TestPKCS11_SIGKILLDuringRotation is TestCrash_SIGKILLDuringRotation with
// the ES256 keys in a SoftHSM2 token: `signet serve` rotating every second
// is killed at random moments; after each kill the store is consistent
// (checkCrashedStore) and every active and pending key loads from the token
// (a key committed is never missing its object). Kills between generating
// in the token and committing leave orphans; at the end `DestroyOrphans`
// removes them and the server starts and signs again, so no key in use was
// taken for an orphan.
func TestPKCS11_SIGKILLDuringRotation(t *testing.T) {
	hsm := softhsmtest.NewToken(t, "signet-kill")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "signet.yaml")
	algs := []string{"ES256", "EdDSA"}
	yaml := fmt.Sprintf(`data_dir: %s
http:
  addr: 127.0.0.1:0
keys:
  algorithms: [ES256, EdDSA]
  custody:
    pkcs11:
      algorithms: [ES256]
      module: %s
      token_label: %s
  rotation:
    schedule: "@every 1s"
  purge:
    schedule: "@every 1s"
jwks:
  max_age: 1s
tokens:
  max_ttl: 1h
`, filepath.Join(dir, "data"), hsm.Module, hsm.TokenLabel)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfgPath}
	pinEnv := "SIGNET_PKCS11_PIN=" + hsm.PIN
	const kills = 15
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	published, actives := map[string]bool{}, map[string]bool{}
	openKeys := func(i int) (*keys.Manager, func()) {
		t.Helper()
		kekB64, err := os.ReadFile(filepath.Join(dir, "data", "kek"))
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		kek, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(kekB64)))
		if err != nil {
			t.Fatal(err)
		}
		st, err := storeopen.OpenBolt(filepath.Join(dir, "data", "signet.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pkcs11.Open(pkcs11.Config{Module: hsm.Module, TokenLabel: hsm.TokenLabel, PIN: hsm.PIN})
		if err != nil {
			t.Fatal(err)
		}
		m, err := keys.Open(context.Background(), keys.Options{Store: st, KEK: kek, Algorithms: algs,
			Custody: map[string]custody.Custody{"ES256": c}, MaxTokenTTL: time.Hour})
		if err != nil {
			c.Close()
			st.Close()
			t.Fatalf("kill %d: a committed key does not load from the token: %v", i, err)
		}
		return m, func() { m.Close(); c.Close(); st.Close() }
	}
	for i := range kills {
		ch := startChild(t, args, pinEnv)
		if i > 0 && rng.IntN(10) == 0 {
			time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
			ch.kill()
		} else {
			base := "http://" + ch.waitServing(t)
			deadline := time.Now().Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
			for time.Now().Before(deadline) {
				set, _, _ := fetchJWKS(t, base)
				for kid := range kids(set) {
					published[kid] = true
				}
			}
			ch.kill()
		}
		checkCrashedStore(t, i, filepath.Join(dir, "data", "signet.db"), algs, published, actives)
		if _, err := os.Stat(filepath.Join(dir, "data", "kek")); err != nil {
			continue // killed before the first start finished
		}
		_, done := openKeys(i)
		done()
	}
	m, done := openKeys(kills)
	orphans, err := m.DestroyOrphans(context.Background(), 0)
	done()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills; %d keys published; %d orphans destroyed", kills, len(published), len(orphans))
	ch := startChild(t, args, pinEnv)
	base := "http://" + ch.waitServing(t)
	set, _, _ := fetchJWKS(t, base)
	if len(kids(set)) == 0 {
		t.Fatal("no keys published after destroying the orphans")
	}
	ch.kill()
	m2, done2 := openKeys(kills + 1)
	defer done2()
	if _, err := m2.SigningKey("ES256"); err != nil {
		t.Fatalf("after the orphans were destroyed: %v", err)
	}
}
