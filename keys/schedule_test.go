package keys_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
)

// outageStore is a real store that does not answer until the injected
// clock reaches until, as etcd without a quorum: every call fails with
// storage.ErrUnavailable. With lostAnswer, an Update commits and then
// fails (etcd's "commit outcome unknown": the answer was lost, the write
// was not).
type outageStore struct {
	storage.Store
	clk        *clock
	mu         sync.Mutex
	until      time.Time
	lostAnswer bool
}

var errOutage = fmt.Errorf("injected: etcdserver: request timed out: %w", storage.ErrUnavailable)

func (s *outageStore) down() (bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clk.Now().Before(s.until), s.lostAnswer
}

func (s *outageStore) set(until time.Time, lostAnswer bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.until, s.lostAnswer = until, lostAnswer
}

func (s *outageStore) View(ctx context.Context, fn func(storage.Tx) error) error {
	if down, lost := s.down(); down && !lost {
		return errOutage
	}
	return s.Store.View(ctx, fn)
}

func (s *outageStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	down, lost := s.down()
	switch {
	case down && lost:
		if err := s.Store.Update(ctx, fn); err != nil {
			return err
		}
		return errOutage
	case down:
		return errOutage
	}
	return s.Store.Update(ctx, fn)
}

func (s *outageStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Update(ctx, fn)
}

// retiredKeys counts the keys rotations retired: one per rotation.
func retiredKeys(t *testing.T, st storage.Store) int {
	t.Helper()
	list, err := keys.List(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range list {
		if k.State == keys.StateRetired {
			n++
		}
	}
	return n
}

// TestSchedule_RetriesFailedRotation (issue 17): a scheduled rotation that
// fails because the store does not answer is tried again after 1s,
// doubling to 30s (less up to a fifth at random), until it is done, instead
// of waiting a whole period for the next tick (8 of 9 rotations were lost
// so in a soak); the retries stop at the next scheduled tick, whose run
// takes over; a replica that no longer leads stops retrying; and the
// rotation happens once per due time, even when the store committed an
// attempt whose answer it lost. Injected clock, no sleeps.
func TestSchedule_RetriesFailedRotation(t *testing.T) {
	const period = 5 * time.Minute
	setup := func(t *testing.T, period time.Duration, jitter float64) (*clock, *outageStore, storage.Store, *keys.Manager, *keys.Schedule, *[]time.Duration) {
		st, _ := openStore(t)
		clk := newClock()
		os := &outageStore{Store: st, clk: clk}
		m := openManager(t, os, keys.Options{Algorithms: []string{"ES256"}, Now: clk.Now,
			Schedule: func(t time.Time) time.Time { return t.Add(period) }})
		var waits []time.Duration
		s := keys.NewSchedule(m, keys.ScheduleOptions{
			Jitter: func() float64 { return jitter },
			Sleep: func(_ context.Context, d time.Duration) bool {
				waits = append(waits, d)
				clk.Add(d)
				return true
			},
		})
		return clk, os, st, m, s, &waits
	}
	rotate := func(m *keys.Manager) func(context.Context) error {
		return func(ctx context.Context) error { return m.RotateScheduled(ctx) }
	}

	t.Run("outage shorter than a period: rotated once, as soon as the store answers", func(t *testing.T) {
		clk, os, st, m, s, waits := setup(t, period, 0)
		os.set(clk.Now().Add(40*time.Second), false)
		start := clk.Now()
		if n := s.Run(t.Context(), rotate(m)); n != 7 {
			t.Errorf("attempts = %d, want 7 (the store answers again after 40s)", n)
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second}
		if !slices.Equal(*waits, want) {
			t.Errorf("waits between attempts = %v, want %v", *waits, want)
		}
		if got := retiredKeys(t, st); got != 1 {
			t.Fatalf("%d rotations, want 1", got)
		}
		if got, want := m.NextRotation(), start.Add(61*time.Second+period); !got.Equal(want) {
			t.Errorf("next rotation = %v, want %v (a period after the rotation done)", got, want)
		}
		// cron runs the job again at once while the store's answer is
		// not yet in memory: no second rotation for the tick.
		s.Run(t.Context(), rotate(m))
		if got := retiredKeys(t, st); got != 1 {
			t.Errorf("a second run for the same tick rotated again: %d rotations", got)
		}
	})

	t.Run("delays are jittered down by at most a fifth and stay at most 30s", func(t *testing.T) {
		clk, os, _, m, s, waits := setup(t, time.Hour, 0.999)
		os.set(clk.Now().Add(10*time.Minute), false)
		s.Run(t.Context(), rotate(m))
		if len(*waits) < 8 {
			t.Fatalf("only %d retries in a 10-minute outage", len(*waits))
		}
		for i, d := range *waits {
			full := min(time.Second<<i, 30*time.Second)
			if d > full || d < full*4/5 {
				t.Errorf("wait %d = %s, want within [%s, %s]", i, d, full*4/5, full)
			}
		}
	})

	t.Run("outage longer than a period: retries stop at the next tick, whose run rotates once", func(t *testing.T) {
		const short = 20 * time.Second
		clk, os, st, m, s, waits := setup(t, short, 0)
		start := clk.Now()
		os.set(start.Add(100*time.Second), false)
		if n := s.Run(t.Context(), rotate(m)); n != 5 {
			t.Errorf("attempts before the next tick = %d, want 5 (1+2+4+8 s of waits; 16 s more passes the tick at 20 s)", n)
		}
		if end := clk.Now(); !end.Before(start.Add(short)) {
			t.Errorf("the retries ran until %s after the start, past the next tick at %s", end.Sub(start), short)
		}
		for tick := start.Add(short); !tick.After(start.Add(100 * time.Second)); tick = tick.Add(short) {
			clk.Add(tick.Sub(clk.Now())) // cron runs the job at each tick
			s.Run(t.Context(), rotate(m))
		}
		if got := retiredKeys(t, st); got != 1 {
			t.Errorf("%d rotations after the outage, want 1 (one per due time, not one per missed tick)", got)
		}
		if len(*waits) == 0 {
			t.Fatal("no retries")
		}
	})

	t.Run("an attempt whose answer was lost but which committed is not repeated", func(t *testing.T) {
		clk, os, st, m, s, _ := setup(t, period, 0)
		os.set(clk.Now().Add(time.Second), true) // the first attempt commits, its answer is lost
		if n := s.Run(t.Context(), rotate(m)); n != 2 {
			t.Errorf("attempts = %d, want 2", n)
		}
		if got := retiredKeys(t, st); got != 1 {
			t.Errorf("%d rotations, want 1: the retry rotated again after a committed attempt", got)
		}
	})

	t.Run("a replica that no longer leads stops retrying", func(t *testing.T) {
		clk, os, st, m, s, _ := setup(t, period, 0)
		os.set(clk.Now().Add(time.Hour), false)
		leading := true
		attempts := 0
		n := s.Run(t.Context(), func(ctx context.Context) error {
			attempts++
			if !leading {
				return nil // rotation left to the leader (cmd/signet's attempt)
			}
			if attempts == 3 {
				leading = false // the lease is lost during the outage
			}
			return m.RotateScheduled(ctx)
		})
		if n != 4 {
			t.Errorf("attempts = %d, want 4: stop at the first that finds another leader", n)
		}
		os.set(time.Time{}, false)
		if got := retiredKeys(t, st); got != 0 {
			t.Errorf("%d rotations by a replica that does not lead", got)
		}
	})

	t.Run("Close ends a wait", func(t *testing.T) {
		st, _ := openStore(t)
		m := openManager(t, st, keys.Options{Algorithms: []string{"ES256"}, Schedule: func(t time.Time) time.Time { return t.Add(time.Hour) }})
		s := keys.NewSchedule(m, keys.ScheduleOptions{})
		n := s.Run(t.Context(), func(context.Context) error {
			s.Close() // shutdown while the attempt fails
			return errOutage
		})
		if n != 1 {
			t.Errorf("attempts = %d, want 1: a closed schedule does not wait out its back-off", n)
		}
	})
}
