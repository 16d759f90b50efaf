// Package datadir is about the files Signet keeps on disk: the data
// directory checked before anything is written, permission errors that name
// the user signet runs as and the command that fixes them, and private
// (0600) files written atomically.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Check refuses, before anything is written, a data directory that
// is a file or that the process cannot write (when it exists).
func Check(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // MkdirAll makes it, or says why it cannot
	case err != nil:
		return Error(dir, err, CurrentUser())
	case !info.IsDir():
		return Error(dir, syscall.ENOTDIR, CurrentUser())
	}
	if err := canWrite(dir); err != nil {
		return Error(dir, &fs.PathError{Op: "access", Path: dir, Err: err}, CurrentUser())
	}
	return nil
}

// User is who the process runs as, for permission errors.
type User struct {
	uid, gid, name string
}

// CurrentUser looks up the process's user. In the scratch image there is
// no /etc/passwd: the name is then empty and the ids still right.
func CurrentUser() User {
	u := User{uid: strconv.Itoa(os.Getuid()), gid: strconv.Itoa(os.Getgid())}
	if cu, err := user.LookupId(u.uid); err == nil {
		u.name = cu.Username
	}
	return u
}

// String names the user for messages.
func (u User) String() string {
	if u.name == "" {
		return "uid " + u.uid + " (no user name; 65532 in the Docker image)"
	}
	return "uid " + u.uid + " (" + u.name + ")"
}

// Error says what is wrong with the data directory and the command
// that fixes it.
func Error(dir string, err error, u User) error {
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("data directory %s is not a directory (a file is in the way): set data_dir or SIGNET_DATA_DIR to a directory, or move the file: %w", dir, err)
	case errors.Is(err, fs.ErrPermission):
		return PermissionError("data directory", dir, err, u)
	}
	return fmt.Errorf("data directory %s: %w", dir, err)
}

// PermissionError names the user signet runs as, the path and the command
// that gives it the path. field is the setting or thing the path is. When
// the path does not exist (signet could not create it), the change belongs
// to the nearest directory above it that does: chown of a path that was
// never made would fail.
func PermissionError(field, path string, err error, u User) error {
	owner := u.uid + ":" + u.gid
	fix := fmt.Sprintf("run `chown -R %s %s`", owner, path)
	if _, serr := os.Lstat(path); errors.Is(serr, fs.ErrNotExist) {
		parent := nearestExisting(filepath.Dir(path))
		if field == "data directory" {
			fix = fmt.Sprintf("%s does not exist and %s does not let this user create it: run `mkdir -p %s && chown %s %s` as the owner of %s",
				path, parent, path, owner, path, parent)
		} else {
			fix = fmt.Sprintf("%s does not exist and %s does not let this user create it: run `chown -R %s %s`",
				path, parent, owner, parent)
		}
	}
	return fmt.Errorf("%s %s: permission denied for signet running as %s: %s "+
		"(in Docker, on the volume: the image runs as 65532:65532), or run signet as the owner: %w",
		field, path, u, fix, err)
}

// nearestExisting returns dir or the closest directory above it that
// exists.
func nearestExisting(dir string) string {
	for {
		if _, err := os.Lstat(dir); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return dir
		}
		dir = up
	}
}

// WritePrivateFile writes data to path atomically with mode 0600: a temp file
// in the same directory, fsync, rename, fsync the directory.
func WritePrivateFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
