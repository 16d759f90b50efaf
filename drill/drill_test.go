package drill

import (
	"strings"
	"testing"
	"time"
)

// TestStillAccepted: the explanation of each kind of verifier names the
// cache lifetime that keeps a revoked key accepted.
func TestStillAccepted(t *testing.T) {
	// The explanation of each kind names the cache lifetime that causes it.
	for verifier, want := range map[string]string{
		"signet jwks.Verifier": "every 10s", "jwx jwk.Cache": "15m", "go-oidc RemoteKeySet": "until the process restarts",
	} {
		if got := stillAccepted(verifier, time.Second); !strings.Contains(got, want) {
			t.Errorf("stillAccepted(%s) = %q, want %q in it", verifier, got, want)
		}
	}
	if got := stillAccepted("signet jwks.Verifier", 2*time.Minute); !strings.Contains(got, "every 2m0s") {
		t.Errorf("stillAccepted with max-age 2m = %q", got)
	}
}

// TestPreconditions: a drill whose rotation the server would refuse fails
// before it starts.
func TestPreconditions(t *testing.T) {
	// The check itself, on a clock: 15m of a 1h drill pass before the
	// rotation, so a key published 50m ago is old enough, 40m ago is not.
	now := time.Now()
	d := &runner{duration: time.Hour, maxAge: time.Hour}
	rows := func(age time.Duration) []keyRow {
		return []keyRow{{KID: "a", Alg: "ES256", State: "active"}, {KID: "p", Alg: "ES256", State: "pending", CreatedAt: now.Add(-age)}}
	}
	if err := d.preconditions(rows(50*time.Minute), now); err != nil {
		t.Errorf("pending key 50m old, rotation at 15m, max-age 1h: %v", err)
	}
	if err := d.preconditions(rows(40*time.Minute), now); err == nil || !strings.Contains(err.Error(), "wait 5m0s") {
		t.Errorf("pending key 40m old: %v, want an error saying to wait 5m", err)
	}
	if err := d.preconditions(rows(40 * time.Minute)[:1], now); err == nil || !strings.Contains(err.Error(), "no pending key") {
		t.Errorf("no pending key: %v", err)
	}
	d.force = true
	if err := d.preconditions(rows(0), now); err != nil {
		t.Errorf("--force: %v", err)
	}
}
