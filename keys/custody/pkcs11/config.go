package pkcs11

import (
	"io"
	"time"
)

// Name is the custody name stored in the records of keys held here.
const Name = "pkcs11"

// labelPrefix marks the objects Signet generated.
const labelPrefix = "signet:"

// Config selects a token and logs in to it.
type Config struct {
	// Module is the path of the PKCS#11 library, such as
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel selects the token.
	TokenLabel string
	// PIN is the user PIN (a secret: never logged).
	PIN string
	// Timeout bounds the wait for a session; default 5s. A module that does
	// not answer then fails the signature instead of hanging the request.
	Timeout time.Duration
	Now     func() time.Time
	Rand    io.Reader
}
