// Package softhsmtest makes a fresh SoftHSM2 token for a test: a temporary
// token directory, a SOFTHSM2_CONF naming it (set for the test only) and
// `softhsm2-util --init-token`. Tests that use it carry the build tag
// pkcs11 (see the README): they need Debian's softhsm2 package, which
// .ci/run installs.
package softhsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/signet-auth/signet/keys/custody/pkcs11"
)

// Module is where Debian's softhsm2 package puts the PKCS#11 library.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// PIN is the user PIN of every test token.
const PIN = "1234"

// NewToken initialises a token labelled label in a temporary directory and
// returns the Config that opens it. It fails the test (never skips) when
// SoftHSM2 is not installed.
func NewToken(t testing.TB, label string) pkcs11.Config {
	t.Helper()
	if _, err := os.Stat(Module); err != nil {
		t.Fatalf("SoftHSM2 is not installed (apt-get install softhsm2): %v", err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "5678")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return pkcs11.Config{Module: Module, TokenLabel: label, PIN: PIN}
}

// Open opens a new token and closes it when the test ends.
func Open(t testing.TB, label string) *pkcs11.Custody {
	t.Helper()
	c, err := pkcs11.Open(NewToken(t, label))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
