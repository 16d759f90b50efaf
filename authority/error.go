package authority

import (
	"context"
	"errors"
	"net/http"

	"github.com/signet-auth/signet/authority/refusal"
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
	// refusal names the condition of a refusal Signet makes on purpose
	// (store_stale, store_unavailable, request_deadline, signing_unavailable,
	// auth_rate_limit, login_rate_limit):
	// logged once per episode of the condition (package refusal), not per
	// request and never as an internal error.
	refusal string
}

func (e *Error) Error() string { return "oauth2 " + e.Code + ": " + e.Description }

func (e *Error) Unwrap() error { return e.Err }

// ErrKeyConflict is wrapped by KeyAdmin errors that refuse an operation the
// current key state does not allow (e.g. a pending key too young to
// activate). The admin API answers 409 with the error text.
var ErrKeyConflict = errors.New("authority: key state conflict")

func InvalidRequest(desc string) *Error {
	return &Error{Code: "invalid_request", Description: desc, Status: http.StatusBadRequest}
}

// BearerError is a refusal of a bearer token request that carries the
// WWW-Authenticate challenge (RFC 6750 §3), e.g. `Bearer
// realm="signet-admin", error="insufficient_scope"`.
func BearerError(code, desc string, status int, challenge string) *Error {
	return &Error{Code: code, Description: desc, Status: status, bearer: challenge}
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

// ServerError is the answer to a failure on Signet's side: 500 server_error,
// except when the store did not answer in time, lost its leader or kept
// conflicting: that passes, and the client may retry here or at another
// replica, so it is 503 temporarily_unavailable with Retry-After (RFC 6749
// §5.2 allows the code from the token endpoint as from authorize).
func ServerError(err error) *Error {
	if refusal.StoreUnavailable(err) {
		desc := "the store did not answer in time; retry later or on another replica"
		if refusal.Condition(err) == refusal.ConditionDeadline {
			desc = "the server is busy and this request ran out of time; retry later or on another replica"
		}
		return errRefused(refusal.Condition(err), "temporarily_unavailable", desc, http.StatusServiceUnavailable, 1, err)
	}
	return &Error{Code: "server_error", Description: "internal error", Status: http.StatusInternalServerError, Err: err}
}

// errRefused is a refusal Signet makes on purpose, for condition.
func errRefused(condition, code, desc string, status, retryAfter int, err error) *Error {
	return &Error{Code: code, Description: desc, Status: status, retryAfter: retryAfter, refusal: condition, Err: err}
}

// noteRefusal logs e, a deliberate refusal, once per episode of its
// condition (package refusal).
func (s *Server) noteRefusal(ctx context.Context, e *Error, reqID string) {
	reason := e.Description
	if e.Err != nil {
		reason = e.Err.Error()
	}
	s.refusals.Note(ctx, s.log, e.refusal, e.Status, reason, reqID, s.cfg.Now())
}

// errStale refuses to issue on a replica that has lost its store
// (cfg.CanIssue), at the token and device authorization endpoints alike:
// a deliberate refusal, logged once per episode.
func errStale(err error) *Error {
	return errRefused("store_stale", "temporarily_unavailable", "this replica has lost its store; retry on another replica or later", http.StatusServiceUnavailable, 1, err)
}

// canIssue is cfg.CanIssue, nil when unset.
func (s *Server) canIssue() error {
	if s.cfg.CanIssue == nil {
		return nil
	}
	return s.cfg.CanIssue()
}
