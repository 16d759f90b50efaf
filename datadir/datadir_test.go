package datadir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPermissionError: the tests run as root, which may write anywhere, so
// the message is checked from an injected error on a real tree
// (TestPermissionError_NonRoot runs signet as another user).
func TestPermissionError(t *testing.T) {
	data := t.TempDir()
	err := Error(data, &fs.PathError{Op: "open", Path: filepath.Join(data, "signet.db"), Err: syscall.EACCES},
		User{uid: "65532", gid: "65532"})
	for _, want := range []string{data, "uid 65532", "chown -R 65532:65532 " + data + "`", "permission denied"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("the error no longer wraps fs.ErrPermission")
	}
	db := filepath.Join(data, "signet.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = PermissionError("database", db, syscall.EPERM, User{uid: "1000", gid: "1000", name: "alice"})
	if !strings.Contains(err.Error(), "uid 1000 (alice)") || !strings.Contains(err.Error(), "chown -R 1000:1000 "+db+"`") {
		t.Errorf("%q: want the user's name and the chown", err)
	}
	// A path that was never made: the advice names the directory that
	// exists and needs the change, never the missing path alone.
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "srv", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	nobody := User{uid: "65534", gid: "65534", name: "nobody"}
	for _, tc := range []struct {
		field, path string
		wants       []string
	}{
		{"data directory", filepath.Join(tree, "srv", "app", "data"), []string{
			"does not exist and " + filepath.Join(tree, "srv", "app") + " does not let this user create it",
			"mkdir -p " + filepath.Join(tree, "srv", "app", "data") + " && chown 65534:65534 " + filepath.Join(tree, "srv", "app", "data"),
			"as the owner of " + filepath.Join(tree, "srv", "app")}},
		{"data directory", filepath.Join(tree, "srv", "missing", "deeper", "data"), []string{
			"does not let this user create it", "as the owner of " + filepath.Join(tree, "srv") + " ("}},
		{"key-encryption key file", filepath.Join(tree, "srv", "app", "kek"), []string{
			"chown -R 65534:65534 " + filepath.Join(tree, "srv", "app") + "`"}},
		{"data directory", filepath.Join(tree, "srv", "app"), []string{
			"chown -R 65534:65534 " + filepath.Join(tree, "srv", "app") + "`"}},
	} {
		err := PermissionError(tc.field, tc.path, syscall.EACCES, nobody)
		for _, want := range tc.wants {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s %s: %q lacks %q", tc.field, tc.path, err, want)
			}
		}
	}

	u := CurrentUser()
	if u.uid != "0" && os.Getuid() == 0 {
		t.Errorf("CurrentUser = %+v as root", u)
	}
}
