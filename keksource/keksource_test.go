package keksource

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDecode: the base64 of 32 bytes, standard or URL-safe, with or without
// padding and surrounding space; anything else names the fix.
func TestDecode(t *testing.T) {
	for _, v := range []string{
		"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
		"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
	} {
		if k, err := Decode(v); err != nil || string(k) != "0123456789abcdef0123456789abcdef" {
			t.Errorf("Decode(%q) = %q, %v", v, k, err)
		}
	}
	for v, want := range map[string]string{"not base64!": "not base64", "MDEy": "decodes to 3 bytes, want 32"} {
		if _, err := Decode(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%q) = %v, want %q", v, err, want)
		}
	}
}

// TestCheckMode: a KEK file other users can read is refused with the
// chmod that fixes it; a missing file is not CheckMode's concern.
func TestCheckMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	if err := CheckMode(path); err != nil {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := CheckMode(path); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("0640: %v, want a refusal naming chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckMode(path); err != nil {
		t.Errorf("0600: %v", err)
	}
}

// TestSubkey: subkeys are 32 bytes, differ by purpose and from the KEK,
// and the feed key of no KEK is none.
func TestSubkey(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	a, b := Subkey(kek, DPoPNonceInfo), FeedSubjectKey(kek)
	if len(a) != 32 || len(b) != 32 || bytes.Equal(a, b) || bytes.Equal(a, kek) {
		t.Errorf("subkeys %x %x", a, b)
	}
	if FeedSubjectKey(nil) != nil {
		t.Error("FeedSubjectKey(nil) is not nil")
	}
}
