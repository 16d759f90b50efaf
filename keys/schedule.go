package keys

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Schedule runs the scheduled rotation job. Next (a cron schedule) follows
// the next rotation time stored with the keys (Options.Schedule moves it on
// at every rotation), so every replica, and a newly elected leader, runs
// the job when the fleet's rotation is due rather than a period after its
// own start: while the stored time has passed, every RotationRecheck until
// the rotation is done; with nothing stored yet (before the first scheduled
// rotation), on Options.Schedule.
//
// Run tries a failed rotation (the store did not answer, etcd lost its
// quorum) again after RetryFirst, doubling up to RetryMax, each delay
// shortened by up to a fifth at random so that replicas do not retry in
// step, until it is done or the next scheduled tick comes (that run takes
// over): a rotation that meets an outage is late, not lost for a period.
// Each attempt is the caller's (fenced: only the leader rotates), and a
// rotation happens once per due time however many attempts there are
// (RotateScheduled refuses a rotation that is no longer due).
type Schedule struct {
	m      *Manager
	jitter func() float64                                  // in [0, 1)
	sleep  func(ctx context.Context, d time.Duration) bool // false: stop

	closeOnce sync.Once
	closed    chan struct{}
}

const (
	// RotationRecheck is how soon the job runs again while a rotation is
	// due but not done (another replica leads, the pending key is too young).
	RotationRecheck = time.Second
	// RetryFirst and RetryMax bound the delay before a failed rotation is
	// tried again.
	RetryFirst = time.Second
	RetryMax   = 30 * time.Second
)

// ScheduleOptions are for tests: a fixed jitter, and a Sleep that moves an
// injected clock instead of waiting.
type ScheduleOptions struct {
	// Jitter returns a number in [0, 1) (default math/rand).
	Jitter func() float64
	// Sleep waits d and reports true, or false when ctx ends first
	// (default: a timer). Close also ends the default's wait.
	Sleep func(ctx context.Context, d time.Duration) bool
}

// NewSchedule is the rotation job's schedule for m.
func NewSchedule(m *Manager, o ScheduleOptions) *Schedule {
	s := &Schedule{m: m, jitter: o.Jitter, sleep: o.Sleep, closed: make(chan struct{})}
	if s.jitter == nil {
		s.jitter = rand.Float64
	}
	if s.sleep == nil {
		s.sleep = s.wait
	}
	return s
}

// Next is the time after t at which the job runs next.
func (s *Schedule) Next(t time.Time) time.Time {
	next := s.m.NextRotation()
	switch {
	case next.IsZero():
		if s.m.opts.Schedule == nil {
			return time.Time{} // no schedule: never
		}
		return s.m.opts.Schedule(t)
	case next.After(t):
		return next
	default:
		return t.Add(RotationRecheck)
	}
}

// Run runs attempt, one try of the scheduled rotation job, and tries again
// with back-off while it fails, until it does not, the next scheduled tick
// after the first try comes, ctx ends or the schedule is closed. It
// returns the number of attempts made.
func (s *Schedule) Run(ctx context.Context, attempt func(ctx context.Context) error) int {
	var tick time.Time // retries stop here; zero: no schedule, no retries
	if s.m.opts.Schedule != nil {
		tick = s.m.opts.Schedule(s.m.opts.Now())
	}
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			if n > 1 {
				s.m.log.LogAttrs(ctx, slog.LevelInfo, "scheduled rotation done after failed attempts", slog.Int("attempts", n))
			}
			return n
		}
		d := s.retryDelay(n)
		if tick.IsZero() || !s.m.opts.Now().Add(d).Before(tick) {
			s.m.log.LogAttrs(ctx, slog.LevelWarn, "scheduled rotation failed until the next scheduled run, which tries again",
				slog.Int("attempts", n), slog.String("err", err.Error()), slog.Time("next_try", tick))
			return n
		}
		level := slog.LevelDebug // one warning per series, not one per retry
		if n == 1 {
			level = slog.LevelWarn
		}
		s.m.log.LogAttrs(ctx, level, "scheduled rotation failed; retrying", slog.Int("attempt", n),
			slog.Duration("retry_in", d), slog.String("err", err.Error()))
		if !s.sleep(ctx, d) {
			return n
		}
	}
}

// retryDelay is the delay after the n-th consecutive failure: RetryFirst
// doubled n-1 times, at most RetryMax, less up to a fifth at random.
func (s *Schedule) retryDelay(n int) time.Duration {
	d := RetryMax
	if n <= 5 { // RetryFirst << 5 > RetryMax
		d = min(RetryFirst<<(n-1), RetryMax)
	}
	return d - time.Duration(s.jitter()*float64(d)/5)
}

// Close ends the waits of a running Run (shutdown does not wait out a
// back-off).
func (s *Schedule) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

func (s *Schedule) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closed:
	}
	return false
}
