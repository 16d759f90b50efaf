//go:build !unix

package bolt

import "os"

// unlock is a no-op where bbolt does not use flock; closing the file is enough.
func unlock(*os.File) {}
