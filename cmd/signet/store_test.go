package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServe_BadDatabaseFile: a damaged or exposed database file stops
// `signet serve` with an error that says what is wrong and what to do; it
// never starts on an empty key set in its place, and never panics.
func TestServe_BadDatabaseFile(t *testing.T) {
	// A real database with keys in it, to damage.
	good := testConfig(t, nil)
	m, _ := startMain(t, good, nil)
	// A few rotations, so that both meta pages point at states with keys.
	history := map[string]bool{} // every kid the store has held
	for i := range 4 {
		if i > 0 {
			if err := m.Keys.Rotate(t.Context(), true); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range m.Keys.Current() {
			history[k.KID] = true
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(good.BoltPath())
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte {
			for i := off; i < off+64 && i < len(b); i++ {
				b[i] ^= 0xA5
			}
			return b
		}
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
		mode   os.FileMode
		want   []string
	}{
		{"truncated to zero", func([]byte) []byte { return nil }, 0o600, []string{"corrupt", "restore"}},
		{"truncated to one page", func(b []byte) []byte { return b[:page] }, 0o600, []string{"corrupt", "restore"}},
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }, 0o600, []string{"corrupt", "restore"}},
		{"both meta pages garbled", func(b []byte) []byte { return flip(page + 16)(flip(16)(b)) }, 0o600, []string{"corrupt", "restore"}},
		{"random bytes", func(b []byte) []byte { return bytes.Repeat([]byte{0x5A, 0x13}, len(b)/2) }, 0o600, []string{"corrupt", "restore"}},
		{"world-readable", func(b []byte) []byte { return b }, 0o644, []string{"lets other users read it", "chmod 600"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "signet.db")
			if err := os.WriteFile(path, tc.damage(bytes.Clone(orig)), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			kek, _ := os.ReadFile(filepath.Join(good.DataDir, "kek"))
			if err := os.WriteFile(filepath.Join(dir, "kek"), kek, 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0"}, &stdout, &stderr)
			if code == 0 {
				t.Fatalf("serve started on a damaged database:\n%s", stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("error lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "goroutine ") {
				t.Errorf("a stack trace reached the user:\n%s", stderr.String())
			}
		})
	}

	// One garbled meta page is what bbolt's two meta pages are for: it opens
	// on the other, the commit before the last. That is an older but
	// consistent key set, never a new one.
	t.Run("one meta page garbled", func(t *testing.T) {
		for meta := range 2 {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "signet.db"), flip(meta*page+16)(bytes.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			kek, _ := os.ReadFile(filepath.Join(good.DataDir, "kek"))
			if err := os.WriteFile(filepath.Join(dir, "kek"), kek, 0o600); err != nil {
				t.Fatal(err)
			}
			c := good
			c.DataDir = dir
			m2, _ := startMain(t, c, nil)
			for _, k := range m2.Keys.Current() {
				if !history[k.KID] {
					t.Errorf("meta page %d garbled: key %s is new: the store was not read back", meta, k.KID)
				}
			}
			m2.Close()
		}
	})
}
