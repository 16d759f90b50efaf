//go:build unix

package bolt

import (
	"os"
	"syscall"
)

// unlock drops the flock on f. Closing f alone is not enough after bbolt
// panicked in Open: its mmap keeps the open file, and with it the lock, alive.
func unlock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
