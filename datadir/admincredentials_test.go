package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminCredentials: what the first start writes reads back, the file
// is 0600 and replaces an earlier one, and the reader refuses a file other
// users can read or one that is not the credentials.
func TestAdminCredentials(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, AdminCredentialsFile)
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := AdminCredentials{ClientID: "admin", ClientSecret: "s3cret"}
	if err := WriteAdminCredentials(path, want); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v, %v; want 0600", info.Mode().Perm(), err)
	}
	got, p, err := ReadAdminCredentials(dir)
	if err != nil || got != want || p != path {
		t.Fatalf("ReadAdminCredentials = %+v, %s, %v; want %+v", got, p, err, want)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadAdminCredentials(dir); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("0644: %v, want a refusal naming chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"client_id":"admin"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadAdminCredentials(dir); err == nil || !strings.Contains(err.Error(), "not the credentials") {
		t.Errorf("no secret: %v, want a refusal", err)
	}
}
