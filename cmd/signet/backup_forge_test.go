package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/config"
)

// backupParts splits a backup file into header, body and trailer.
func backupParts(t *testing.T, file []byte) (backup.Header, []byte, backup.Trailer) {
	t.Helper()
	rest, ok := bytes.CutPrefix(file, []byte("signet-backup\n"))
	if !ok {
		t.Fatal("no magic")
	}
	hl, rest, _ := bytes.Cut(rest, []byte("\n"))
	var h backup.Header
	if err := json.Unmarshal(hl, &h); err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(rest[:len(rest)-1], '\n')
	body, tl := rest[:i+1], rest[i+1:]
	if h.Kind == backup.KindBolt {
		body, tl = rest[:h.Size], rest[h.Size:]
	}
	var tr backup.Trailer
	if err := json.Unmarshal(bytes.TrimSpace(tl), &tr); err != nil {
		t.Fatal(err)
	}
	return h, body, tr
}

// joinBackup writes a file of h, body and tr back together, recomputing
// the plain SHA-256 as anyone can.
func joinBackup(t *testing.T, h backup.Header, body []byte, tr backup.Trailer) []byte {
	t.Helper()
	hb, _ := json.Marshal(h)
	sum := sha256.Sum256(body)
	tr.SHA256 = hex.EncodeToString(sum[:])
	tb, _ := json.Marshal(tr)
	return append(append(append([]byte("signet-backup\n"), append(hb, '\n')...), body...), append(tb, '\n')...)
}

// TestRestore_RefusesForgedBackup (issue 16, item 5): a backup whose admin
// client secret hash was swapped for an attacker's, with the plain SHA-256
// trailer recomputed, is refused, naming the MAC; so is an unauthenticated
// format-1 file, a file with an emptied fingerprint restored under another
// KEK, and a file correctly MACed under a KEK that does not open the
// signing keys in it. The untouched file restores.
func TestRestore_RefusesForgedBackup(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	m.Close()
	kekFile, err := os.ReadFile(c.KEKPath())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.signet-backup")
	if stdout, stderr, code := runCmd(t, "backup", "--out", file, "--data-dir", c.DataDir); code != 0 {
		t.Fatalf("backup: %d\n%s%s", code, stdout, stderr)
	}
	orig, _ := os.ReadFile(file)
	h, body, tr := backupParts(t, orig)
	if h.Format != 2 || len(tr.HMAC) != 64 {
		t.Fatalf("header %+v trailer %+v: want format 2 with an HMAC", h, tr)
	}

	real := sha256.Sum256([]byte(admin.ClientSecret))
	evil := sha256.Sum256([]byte("attacker-chosen-secret"))
	realB64, evilB64 := base64.StdEncoding.EncodeToString(real[:]), base64.StdEncoding.EncodeToString(evil[:])
	if bytes.Count(body, []byte(realB64)) == 0 {
		t.Fatalf("the admin secret hash is in the body %d times", bytes.Count(body, []byte(realB64)))
	}
	swapped := bytes.ReplaceAll(bytes.Clone(body), []byte(realB64), []byte(evilB64))
	// The forgery is a complete, undamaged file: what the old plain
	// SHA-256 trailer accepted.
	fp := filepath.Join(t.TempDir(), "forged.signet-backup")
	if err := os.WriteFile(fp, joinBackup(t, h, swapped, tr), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.CheckIntegrity(t.Context(), fp, t.TempDir()); err != nil {
		t.Fatalf("the forgery is not even a well-formed backup: %v", err)
	}

	otherKEK := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	// A correctly MACed file under the other KEK: what someone holding any
	// KEK but the one of the keys could make. Its fingerprint is emptied.
	macedOther := func() []byte {
		m, _ := startMain(t, c, nil)
		defer m.Close()
		var buf bytes.Buffer
		hh := h
		hh.KEKFingerprint = ""
		if err := backup.Write(t.Context(), &buf, m.Store, hh, bytes.Repeat([]byte{9}, 32)); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()

	v1 := h
	v1.Format = 1
	noFP := h
	noFP.KEKFingerprint = ""
	for _, tc := range []struct {
		name string
		file []byte
		kek  string // SIGNET_KEK; "" uses the KEK file
		want []string
	}{
		{"secret hash swapped, SHA-256 recomputed", joinBackup(t, h, swapped, tr), "", []string{"backup authentication failed", "HMAC-SHA256", "does not verify", "altered"}},
		{"secret hash swapped, MAC stripped", joinBackup(t, h, swapped, backup.Trailer{End: true}), "", []string{"backup authentication failed", "no HMAC"}},
		{"secret hash swapped, downgraded to format 1", joinBackup(t, v1, swapped, backup.Trailer{End: true}), "", []string{"format 1 carries no MAC", "signet_version"}},
		{"header fingerprint emptied", joinBackup(t, noFP, body, tr), "", []string{"backup authentication failed"}},
		{"fingerprint emptied, other KEK", joinBackup(t, noFP, body, tr), otherKEK, []string{"backup authentication failed", "fingerprint " + backup.KEKFingerprint(bytes.Repeat([]byte{9}, 32))}},
		{"MAC under a KEK that does not open the keys", macedOther, otherKEK, []string{"does not open the signing keys", "wrong key-encryption key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := testConfig(t, nil)
			if err := os.WriteFile(dst.KEKPath(), kekFile, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("SIGNET_KEK", tc.kek)
			p := filepath.Join(t.TempDir(), "forged.signet-backup")
			if err := os.WriteFile(p, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := runCmd(t, "restore", "--from", p, "--data-dir", dst.DataDir)
			if code == 0 {
				t.Fatalf("restored (rc 0):\n%s", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(dst.BoltPath()); err == nil {
				t.Error("a store was put in place")
			}
		})
	}

	// The untouched file restores and its admin secret works.
	t.Setenv("SIGNET_KEK", "")
	dst := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	if err := os.WriteFile(dst.KEKPath(), kekFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := runCmd(t, "restore", "--from", file, "--data-dir", dst.DataDir); code != 0 {
		t.Fatalf("restore of the untouched file: %d\n%s%s", code, stdout, stderr)
	}
	m2, _ := startMain(t, dst, nil)
	if _, err := issueToken(t.Context(), m2.URL(), admin.ClientID, admin.ClientSecret); err != nil {
		t.Errorf("admin token after restore: %v", err)
	}
}
