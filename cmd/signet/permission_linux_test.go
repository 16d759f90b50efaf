package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestPermissionError_NonRoot runs signet as a user that may not create its
// data directory (uid 65534 when the tests run as root, else the test's own
// user under a read-only parent): the advice must name the directory that
// exists, and the command it gives must be one that can work.
func TestPermissionError_NonRoot(t *testing.T) {
	base := t.TempDir()
	// Everyone may reach the tree and run the binary; only the owner may
	// write in srv/app.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	app := filepath.Join(base, "srv", "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "signet")
	copyFile(t, os.Args[0], bin, 0o755)
	data := filepath.Join(app, "data")

	cmd := exec.Command(bin, "keys", "list", "--data-dir", data)
	cmd.Env = []string{"SIGNET_TEST_RUN_MAIN=1", "PATH=/usr/bin:/bin"}
	uid := os.Getuid()
	if uid == 0 {
		uid = 65534
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else if err := os.Chmod(app, 0o555); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("signet as uid %d made %s in a directory it may not write", uid, data)
	}
	msg := stderr.String()
	gid := strconv.Itoa(os.Getgid())
	if uid == 65534 {
		gid = "65534"
	}
	for _, want := range []string{
		"permission denied for signet running as uid " + strconv.Itoa(uid),
		data + " does not exist and " + app + " does not let this user create it",
		"mkdir -p " + data + " && chown " + strconv.Itoa(uid) + ":" + gid + " " + data,
		"as the owner of " + app,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "chown -R "+strconv.Itoa(uid)+":"+gid+" "+data) {
		t.Errorf("the advice chowns %s, which does not exist:\n%s", data, msg)
	}
	// The advice works: made by the parent's owner, the directory is usable.
	if os.Getuid() == 0 {
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(data, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cmd2 := exec.Command(bin, "keys", "list", "--data-dir", data)
		cmd2.Env = cmd.Env
		cmd2.SysProcAttr = cmd.SysProcAttr
		if out, err := cmd2.CombinedOutput(); err != nil {
			t.Errorf("after the advice: %v\n%s", err, out)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
