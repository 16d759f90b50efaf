// Package refusal logs the refusals a server makes on purpose (a store it
// cannot reach, a rate limit, draining) once per episode of each
// condition, not once per refused request: an operator paged at night
// reads one line saying what is refused and why, and the error log keeps
// only real failures.
package refusal

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Quiet is how long a condition must go without refusals before its next
// refusal is logged again.
const Quiet = time.Minute

// StoreUnavailable says whether err is a store condition that passes: the
// store did not answer in time (a request deadline, etcd's lost leader or
// quorum, wrapped as storage.ErrUnavailable) or kept conflicting. A server
// answers it 503 with Retry-After, never 500: the client may retry here or
// at another replica. It is the one classification of the JSON endpoints
// (authority.ServerError) and the hosted pages (package login).
func StoreUnavailable(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrConflict) || errors.Is(err, context.DeadlineExceeded)
}

// Conditions of a StoreUnavailable error, as refusals log them.
const (
	// ConditionStore: the store did not answer in time, lost its leader
	// or kept conflicting.
	ConditionStore = "store_unavailable"
	// ConditionDeadline: the request's deadline had passed before the
	// store was asked (storage.ErrDeadlinePassed): the time went elsewhere,
	// most often to the CPU (password hashing under a burst of sign-ins),
	// and the store is not to blame.
	ConditionDeadline = "request_deadline"
)

// Condition names the condition of a StoreUnavailable error for its
// refusal line, so that an operator paged by it looks at the right thing.
func Condition(err error) string {
	if errors.Is(err, storage.ErrDeadlinePassed) {
		return ConditionDeadline
	}
	return ConditionStore
}

// Log remembers when each condition last refused a request. The zero value
// is ready to use; it is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	last map[string]time.Time // condition → last refusal
}

// Note records a refusal for condition at now and logs it if it begins an
// episode: at WARN when the server cannot serve (status 5xx), at INFO when
// it limits a client (429).
func (r *Log) Note(ctx context.Context, log *slog.Logger, condition string, status int, reason, requestID string, now time.Time) {
	r.mu.Lock()
	if r.last == nil {
		r.last = map[string]time.Time{}
	}
	prev, seen := r.last[condition]
	r.last[condition] = now
	r.mu.Unlock()
	if seen && now.Sub(prev) < Quiet {
		return
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	log.LogAttrs(ctx, level, "refusing requests", slog.String("condition", condition), slog.Int("status", status),
		slog.String("reason", reason), slog.String("request_id", requestID),
		slog.String("note", "further refusals for this condition are not logged until it has been quiet for "+Quiet.String()))
}
