package jwks

import (
	"sync"
	"testing"
	"time"
)

// TestVerifier_UnknownKIDWaitsForRunningRefresh: a token signed by a key
// that a scheduled refresh is fetching right now (the usual moment of a
// rotation) waits for that refresh instead of being refused because the
// last fetch started less than the min refresh interval ago.
func TestVerifier_UnknownKIDWaitsForRunningRefresh(t *testing.T) {
	old, next := newTestKey(t, "ES256"), newTestKey(t, "ES256")
	clk := newFakeClock()
	clk.armed = make(chan time.Duration)
	f := newFakeIssuer(t, old)
	f.set(func(f *fakeIssuer) { f.maxAge = 60 })
	v := newTestVerifier(t, f, clk, withTimer(clk, func() {}))
	<-clk.armed

	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.publish(old, next)
	f.set(func(f *fakeIssuer) {
		f.hook = func() { // only the first request blocks
			once.Do(func() {
				close(entered)
				<-release
			})
		}
	})
	clk.Advance(60 * time.Second) // the scheduled refresh starts and blocks in the hook
	<-entered

	tok := sign(t, next, f.claims(clk.Now()), nil)
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(t.Context(), tok)
		done <- err
	}()
	close(release)
	if err := <-done; err != nil {
		// Errorf, not Fatalf: the refresher must still park below, or
		// Close waits for it forever.
		t.Errorf("Verify of a token of the key being fetched = %v, want success", err)
	}
	<-clk.armed // the refresher is parked again; Close can stop it
}
