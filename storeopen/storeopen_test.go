package storeopen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pw")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := ReadPasswordFile(good); err != nil || p != "s3cret" {
		t.Errorf("ReadPasswordFile = %q, %v, want s3cret", p, err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPasswordFile(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ReadPasswordFile(0644) = %v, want a refusal", err)
	}
}
