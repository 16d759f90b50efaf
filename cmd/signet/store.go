package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

// openBolt opens the database at path for an offline command: openBoltFile,
// then a refusal of a store whose schema this binary does not run.
func openBolt(path string, lockTimeout time.Duration) (*bolt.Store, error) {
	st, err := openBoltFile(path, lockTimeout)
	if err != nil {
		return nil, err
	}
	if err := checkSchemaOffline(context.Background(), st); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// openBoltFile opens the database at path, making its directory (0700) if
// needed. A database held by a running server is a clear error, not a hang.
func openBoltFile(path string, lockTimeout time.Duration) (*bolt.Store, error) {
	dir := filepath.Dir(path)
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, dataDirError(dir, err, currentUser())
	}
	if _, err := os.ReadDir(dir); err != nil {
		return nil, dataDirError(dir, err, currentUser())
	}
	// The file holds the encrypted private keys and every client's secret
	// hash: refuse one that other users can read, as for the KEK file.
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("database %s: mode %v lets other users read it: run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	st, err := bolt.Open(path, bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrCorrupt) {
		return nil, fmt.Errorf("%w\nSignet will not replace it with a new, empty key set: restore %s from a backup (bbolt check reports what is broken)", err, path)
	}
	if errors.Is(err, bolt.ErrLocked) {
		return nil, &lockedError{path: path, err: err}
	}
	if errors.Is(err, fs.ErrPermission) {
		return nil, permissionError("database", path, err, currentUser())
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// lockedError is a database another process holds open. Offline commands
// can use --server instead; serve says what serve can do (Open sets serve).
type lockedError struct {
	path  string
	err   error
	serve bool // the opener is serve
}

func (e *lockedError) Error() string {
	if e.serve {
		return fmt.Sprintf("database %s is in use by another signet process: stop that server first, or give this one its own data_dir or storage.bolt.path", e.path)
	}
	return fmt.Sprintf("database %s is in use by another signet process (a running server?): stop it, or pass --server URL to work through that server's admin API", e.path)
}

func (e *lockedError) Unwrap() error { return e.err }

// checkDataDir refuses, before anything is written, a data directory that
// is a file or that the process cannot write (when it exists).
func checkDataDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // MkdirAll makes it, or says why it cannot
	case err != nil:
		return dataDirError(dir, err, currentUser())
	case !info.IsDir():
		return dataDirError(dir, syscall.ENOTDIR, currentUser())
	}
	if err := canWrite(dir); err != nil {
		return dataDirError(dir, &fs.PathError{Op: "access", Path: dir, Err: err}, currentUser())
	}
	return nil
}

// osUser is who the process runs as, for permission errors.
type osUser struct {
	uid, gid, name string
}

// currentUser looks up the process's user. In the scratch image there is
// no /etc/passwd: the name is then empty and the ids still right.
func currentUser() osUser {
	u := osUser{uid: strconv.Itoa(os.Getuid()), gid: strconv.Itoa(os.Getgid())}
	if cu, err := user.LookupId(u.uid); err == nil {
		u.name = cu.Username
	}
	return u
}

func (u osUser) String() string {
	if u.name == "" {
		return "uid " + u.uid + " (no user name; 65532 in the Docker image)"
	}
	return "uid " + u.uid + " (" + u.name + ")"
}

// dataDirError says what is wrong with the data directory and the command
// that fixes it.
func dataDirError(dir string, err error, u osUser) error {
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("data directory %s is not a directory (a file is in the way): set data_dir or SIGNET_DATA_DIR to a directory, or move the file: %w", dir, err)
	case errors.Is(err, fs.ErrPermission):
		return permissionError("data directory", dir, err, u)
	}
	return fmt.Errorf("data directory %s: %w", dir, err)
}

// permissionError names the user signet runs as, the path and the command
// that gives it the path. field is the setting or thing the path is. When
// the path does not exist (signet could not create it), the change belongs
// to the nearest directory above it that does: chown of a path that was
// never made would fail.
func permissionError(field, path string, err error, u osUser) error {
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

// openStore opens the store of a data directory for offline commands.
func openStore(dataDir string) (storage.Store, error) {
	return openBolt(filepath.Join(dataDir, "signet.db"), time.Second)
}
