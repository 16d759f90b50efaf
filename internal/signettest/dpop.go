package signettest

import (
	"testing"
	"time"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/replay"
	"github.com/signet-auth/signet/storage"
)

// DPoPChecker is the DPoP checker signet serve builds: the jwks module's,
// with its replay cache in st and the clock now.
func DPoPChecker(t testing.TB, st storage.Store, now func() time.Time) *jwks.DPoPChecker {
	t.Helper()
	c, err := jwks.NewDPoPChecker(jwks.WithDPoPClock(now), jwks.WithDPoPReplayCache(replay.New(st, replay.DPoPBucket, now)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
