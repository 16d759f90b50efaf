package authority

import "net/http"

// errSigning answers a signature that the key's custody could not make (an
// HSM or key service that does not answer; in-memory keys do not fail to
// sign): 503 temporarily_unavailable with Retry-After, as a replica cut off
// from its store answers. No token is issued, none is signed with another
// key, and the client may retry (another replica may reach the module).
func errSigning(err error) *Error {
	return &Error{Code: "temporarily_unavailable", Description: "the signing key cannot be used right now; retry later",
		Status: http.StatusServiceUnavailable, Err: err, retryAfter: 1}
}
