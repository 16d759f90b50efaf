package authority

import "net/http"

// errSigning answers a signature that the key's custody could not make (an
// HSM or key service that does not answer; in-memory keys do not fail to
// sign): 503 temporarily_unavailable with Retry-After, as a replica cut off
// from its store answers. No token is issued, none is signed with another
// key, and the client may retry (another replica may reach the module).
// Like the store's outages it is logged once per episode (package
// refusal), not once per request: a module that is gone fails every
// token request, and a WARN a request buried the log.
func errSigning(err error) *Error {
	return errRefused("signing_unavailable", "temporarily_unavailable", "the signing key cannot be used right now; retry later",
		http.StatusServiceUnavailable, 1, err)
}
