package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestReplicas_Etcd_ScheduleSurvivesFailover (issue 17): the next rotation
// time is stored with the keys, so every replica reports the same
// signet_next_rotation_timestamp_seconds, a new leader waits for the
// stored time (not a period of its own from its start), and rotates at
// once when the stored time has passed. The old schedule slipped by up to
// a period at every leader change. Injected clock, no sleeps.
func TestReplicas_Etcd_ScheduleSurvivesFailover(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	clk := &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	edit := func(c *config.Config) {
		c.Keys.Algorithms = []string{"ES256"}
		c.Keys.Rotation.Schedule = "@every 10m"
		c.JWKS.MaxAge = "60s"
	}
	a, _ := startEtcdReplicaAt(t, cl, "a", "sched/", kek, clk.Now, edit)
	waitFor(t, "a leads", func() bool { return a.leader.Leading() })
	b, _ := startEtcdReplicaAt(t, cl, "b", "sched/", kek, clk.Now, edit)
	ctx := t.Context()

	clk.Add(10 * time.Minute)
	a.rotateJob(ctx)
	next := clk.Now().Add(10 * time.Minute)
	if got := a.nextRotation(); !got.Equal(next) {
		t.Fatalf("after a's rotation, next rotation = %v, want %v", got, next)
	}
	waitFor(t, "b sees the stored schedule", func() bool { return b.nextRotation().Equal(next) })
	for _, m := range []*Main{a, b} {
		if got := nextRotationMetric(t, m); got != next.Unix() {
			t.Errorf("%s: signet_next_rotation_timestamp_seconds = %d, want %d on every replica", m.Config.ReplicaName(), got, next.Unix())
		}
	}

	// The leader goes 4 minutes later; b takes over.
	clk.Add(4 * time.Minute)
	a.Close()
	waitFor(t, "b leads", func() bool { return b.leader.Leading() })
	before, _ := b.Keys.SigningKey("ES256")
	spec := b.rotation
	if got := spec.Next(clk.Now()); !got.Equal(next) {
		t.Errorf("new leader's next run = %v, want the stored %v (not a period from its own start)", got, next)
	}
	b.rotateJob(ctx)
	if now, _ := b.Keys.SigningKey("ES256"); now.KeyID() != before.KeyID() {
		t.Fatal("the new leader rotated before the stored time")
	}
	clk.Add(6 * time.Minute) // the stored time
	b.rotateJob(ctx)
	after, _ := b.Keys.SigningKey("ES256")
	if after.KeyID() == before.KeyID() {
		t.Fatal("the new leader did not rotate at the stored time")
	}
	next = clk.Now().Add(10 * time.Minute)
	if got := b.nextRotation(); !got.Equal(next) {
		t.Errorf("after b's rotation, next rotation = %v, want %v", got, next)
	}
	// A leader that finds the stored time past runs the job at once.
	clk.Add(25 * time.Minute)
	if got := spec.Next(clk.Now()); got.After(clk.Now().Add(keys.RotationRecheck)) {
		t.Errorf("rotation overdue: next run %v, want within %s of %v", got, keys.RotationRecheck, clk.Now())
	}
}

// waitFor polls cond (a watch or an election to catch up) for up to 15s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func nextRotationMetric(t *testing.T, m *Main) int64 {
	t.Helper()
	_, text := scrape(t, m.URL())
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "signet_next_rotation_timestamp_seconds "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(f)
		}
	}
	t.Fatal("no signet_next_rotation_timestamp_seconds")
	return 0
}

// TestServe_RotationPostponedWaits: a rotation due while the pending key is
// too young (a revocation just made it) is postponed with one warning, and
// the leader then waits for the key to be old enough instead of trying,
// and making keys, every second; it rotates as soon as it is.
func TestServe_RotationPostponedWaits(t *testing.T) {
	clk := &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	c := testConfig(t, func(c *config.Config) {
		c.Keys.Algorithms = []string{"ES256"}
		c.Keys.Rotation.Schedule = "@every 10m"
		c.JWKS.MaxAge = "60s"
	})
	m, logs := startMain(t, c, clk.Now)
	ctx := t.Context()
	clk.Add(10 * time.Minute)
	m.rotateJob(ctx) // stores the next rotation: 10 minutes on
	clk.Add(10*time.Minute - 30*time.Second)
	active, _ := m.Keys.SigningKey("ES256")
	if err := m.Keys.Revoke(ctx, active.KeyID()); err != nil { // promotes the pending key, makes a new one
		t.Fatal(err)
	}
	clk.Add(30 * time.Second) // due; the new pending key is 30s old of the 60s it needs
	before, _ := m.Keys.SigningKey("ES256")
	for range 5 {
		m.rotateJob(ctx)
		clk.Add(time.Second)
	}
	if now, _ := m.Keys.SigningKey("ES256"); now.KeyID() != before.KeyID() {
		t.Fatal("rotated with a pending key younger than jwks.max_age")
	}
	if n := strings.Count(logs.String(), "rotation postponed"); n != 1 {
		t.Errorf("%d postponement warnings for one due time, want 1", n)
	}
	clk.Add(30 * time.Second) // the pending key is old enough
	m.rotateJob(ctx)
	if now, _ := m.Keys.SigningKey("ES256"); now.KeyID() == before.KeyID() {
		t.Error("did not rotate once the pending key was old enough")
	}
}
