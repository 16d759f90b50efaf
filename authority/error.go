package authority

import (
	"errors"
	"net/http"
)

// Error is an OAuth 2.0 error (RFC 6749 §5.2) or an admin API error.
// Handlers return it; the one error handler renders it. Code and Description
// go to the client, so they must never carry internal detail; Err is only
// logged.
type Error struct {
	Code        string // invalid_request, invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope, invalid_target, ...
	Description string
	Status      int
	Err         error

	// basic marks an invalid_client answer to a request that authenticated
	// with HTTP Basic: it gets WWW-Authenticate (RFC 6749 §5.2).
	basic bool
	// bearer is the WWW-Authenticate value for admin API refusals.
	bearer string
	// retryAfter is the Retry-After value in seconds for 429 answers.
	retryAfter int
	// allow is the Allow header for 405 answers.
	allow string
}

func (e *Error) Error() string { return "oauth2 " + e.Code + ": " + e.Description }

func (e *Error) Unwrap() error { return e.Err }

// ErrKeyConflict is wrapped by KeyAdmin errors that refuse an operation the
// current key state does not allow (e.g. a pending key too young to
// activate). The admin API answers 409 with the error text.
var ErrKeyConflict = errors.New("authority: key state conflict")

func errInvalidRequest(desc string) *Error {
	return &Error{Code: "invalid_request", Description: desc, Status: http.StatusBadRequest}
}

func errInvalidClient(desc string, basic bool, err error) *Error {
	return &Error{Code: "invalid_client", Description: desc, Status: http.StatusUnauthorized, basic: basic, Err: err}
}

func errInvalidScope(desc string) *Error {
	return &Error{Code: "invalid_scope", Description: desc, Status: http.StatusBadRequest}
}

func errInvalidTarget(desc string) *Error {
	return &Error{Code: "invalid_target", Description: desc, Status: http.StatusBadRequest}
}

func errServer(err error) *Error {
	return &Error{Code: "server_error", Description: "internal error", Status: http.StatusInternalServerError, Err: err}
}
