package jwks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// TestVerifier_Refresh_HonoursMaxAge streams valid tokens over ten
// simulated minutes with max-age=60: the refresher revalidates once per
// minute, every revalidation is a 304, and verification never fetches.
func TestVerifier_Refresh_HonoursMaxAge(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	clk.armed = make(chan time.Duration)
	refreshed := make(chan struct{})
	f := newFakeIssuer(t, k)
	f.set(func(f *fakeIssuer) { f.maxAge = 60 })
	v := newTestVerifier(t, f, clk, withTimer(clk, func() { refreshed <- struct{}{} }))
	if d := <-clk.armed; d != 60*time.Second {
		t.Fatalf("first refresh in %s, want 60s", d)
	}

	tok := sign(t, k, map[string]any{"iss": f.URL(), "sub": "s", "aud": "api", "jti": "j", "client_id": "c",
		"iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()}, nil)
	const seconds = 600
	for range seconds {
		if clk.Advance(time.Second) {
			<-refreshed // the refresher fetched; wait until it is parked again
			<-clk.armed
		}
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("Verify = %v", err)
		}
	}
	st := v.Stats().JWKS
	t.Logf("requests=%d 304=%d over %ds at max-age=60", f.jwksRequests.Load(), f.jwksNotModified.Load(), seconds)
	if got, want := f.jwksRequests.Load(), int64(1+seconds/60); got != want {
		t.Errorf("JWKS requests = %d, want %d", got, want)
	}
	if got, want := f.jwksNotModified.Load(), int64(seconds/60); got != want {
		t.Errorf("304 responses = %d, want %d", got, want)
	}
	if st.NotModified != uint64(seconds/60) || st.Updates != 1 || st.Failures != 0 {
		t.Errorf("Stats().JWKS = %+v", st)
	}
	if err := v.Healthy(); err != nil {
		t.Errorf("Healthy() = %v", err)
	}
}

// TestVerifier_Refresh_PicksUpChanges: a background refresh (not a 304)
// replaces the key set, and the denylist is refreshed on its own max-age.
func TestVerifier_Refresh_PicksUpChanges(t *testing.T) {
	a, b := newTestKey(t, "ES256"), newTestKey(t, "EdDSA")
	clk := newFakeClock()
	clk.armed = make(chan time.Duration)
	refreshed := make(chan struct{})
	f := newFakeIssuer(t, a, b)
	f.set(func(f *fakeIssuer) { f.maxAge, f.feedMaxAge = 60, 20 })
	v := newTestVerifier(t, f, clk, WithDenylist(true), withTimer(clk, func() { refreshed <- struct{}{} }))
	<-clk.armed
	tok := sign(t, a, f.claims(clk.Now()), nil)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify = %v", err)
	}

	f.set(func(f *fakeIssuer) { f.feed.RevokedJTIs = map[string]int64{"jti-1": 0} })
	if !clk.Advance(20 * time.Second) {
		t.Fatal("feed refresh not due")
	}
	<-refreshed
	<-clk.armed
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after feed refresh: Verify = %v, want ErrRevoked", err)
	}
	if got := v.Stats().RevokedJTIs; got != 1 {
		t.Errorf("Stats().RevokedJTIs = %d, want 1", got)
	}

	step := func(d time.Duration) {
		if clk.Advance(d) {
			<-refreshed
			<-clk.armed
		}
	}
	f.publish(b)
	for i := 0; v.Stats().JWKS.Updates < 2; i++ {
		if i > 100 {
			t.Fatal("key set never refreshed")
		}
		step(10 * time.Second)
	}
	if _, err := v.Verify(t.Context(), sign(t, a, f.claims(clk.Now()), map[string]any{})); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("removed key: Verify = %v, want ErrUnknownKey", err)
	}
	if got := v.Stats().Keys; got != 1 {
		t.Errorf("Stats().Keys = %d, want 1", got)
	}
}

// TestVerifier_RandomKIDFlood: 1,000 tokens with random unknown kids
// within one simulated second cause one fetch.
func TestVerifier_RandomKIDFlood(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	v := newTestVerifier(t, f, clk)
	clk.Advance(DefaultMinRefreshInterval)

	hdrs := make([]string, 1000)
	for i := range hdrs {
		hdrs[i] = b64u(mustJSON(t, map[string]any{"alg": "ES256", "typ": "at+jwt",
			"kid": fmt.Sprintf("%016x", rand.Uint64())}))
	}
	good := strings.SplitN(sign(t, k, f.claims(clk.Now()), nil), ".", 2)[1]
	before := f.jwksRequests.Load()
	var wg sync.WaitGroup
	next := make(chan string)
	for range 8 {
		wg.Go(func() {
			for h := range next {
				if _, err := v.Verify(t.Context(), h+"."+good); !errors.Is(err, ErrUnknownKey) {
					t.Errorf("Verify = %v, want ErrUnknownKey", err)
				}
			}
		})
	}
	for _, h := range hdrs {
		clk.Advance(time.Millisecond)
		next <- h
	}
	close(next)
	wg.Wait()
	if got := f.jwksRequests.Load() - before; got != 1 {
		t.Errorf("JWKS requests for 1000 random kids = %d, want 1", got)
	}
}

// TestVerifier_FetchFailure_KeepsLastGoodSet: whatever the JWKS endpoint
// starts returning, known kids keep verifying, the set is not replaced,
// and Healthy and Stats report the failure until a fetch succeeds.
func TestVerifier_FetchFailure_KeepsLastGoodSet(t *testing.T) {
	k := newTestKey(t, "ES256")
	priv := newTestKey(t, "RS256")
	privJWK, err := jwk.FromRaw(priv.priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = privJWK.Set("kid", "private")
	_ = privJWK.Set("alg", "RS256")
	_ = privJWK.Set("use", "sig")

	tests := []struct {
		name  string
		setup func(f *fakeIssuer)
		want  string
	}{
		{"status 500", func(f *fakeIssuer) { f.jwksStatus = http.StatusInternalServerError }, "status 500"},
		{"bad JSON", func(f *fakeIssuer) { f.jwksBody = []byte(`{"keys":[`) }, "decode key set"},
		{"empty set", func(f *fakeIssuer) { f.jwksBody = []byte(`{"keys":[]}`) }, "no usable key"},
		{"only a private key", func(f *fakeIssuer) { f.jwksBody = mustJSON(t, map[string]any{"keys": []any{privJWK}}) }, "no usable key"},
		{"body over 1 MiB", func(f *fakeIssuer) {
			f.jwksBody = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
		}, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			f := newFakeIssuer(t, k)
			var logs bytes.Buffer
			v := newTestVerifier(t, f, clk, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			tok := sign(t, k, f.claims(clk.Now()), nil)

			f.set(tc.setup)
			clk.Advance(DefaultMinRefreshInterval)
			if _, err := v.Verify(t.Context(), sign(t, newTestKey(t, "ES256"), f.claims(clk.Now()), nil)); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("unknown kid: Verify = %v, want ErrUnknownKey", err)
			}
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatalf("known kid after failed fetch: Verify = %v", err)
			}
			err := v.Healthy()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Healthy() = %v, want an error mentioning %q", err, tc.want)
			}
			st := v.Stats()
			if st.Keys != 1 || st.JWKS.Failures != 1 || st.JWKS.LastError == nil || st.JWKS.Requests != 2 {
				t.Errorf("Stats() = %+v", st)
			}

			// Recovery clears the error.
			f.set(func(f *fakeIssuer) { f.jwksStatus, f.jwksBody = 0, nil })
			clk.Advance(DefaultMinRefreshInterval)
			_, _ = v.Verify(t.Context(), sign(t, newTestKey(t, "ES256"), f.claims(clk.Now()), nil))
			if err := v.Healthy(); err != nil {
				t.Errorf("after recovery Healthy() = %v", err)
			}
			if !strings.Contains(logs.String(), "refresh failed") {
				t.Errorf("no failure logged:\n%s", logs.String())
			}
		})
	}
}

// TestVerifier_KeyFiltering: unusable JWKS entries are skipped one by one,
// the rest of the set stays usable.
func TestVerifier_KeyFiltering(t *testing.T) {
	good := newTestKey(t, "ES256")
	entry := func(k *testKey, edit map[string]any) any {
		m := map[string]any{}
		if err := json.Unmarshal(mustJSON(t, k.pub), &m); err != nil {
			t.Fatal(err)
		}
		for n, v := range edit {
			if v == nil {
				delete(m, n)
			} else {
				m[n] = v
			}
		}
		return m
	}
	rsaPriv, err := jwk.FromRaw(newTestKey(t, "RS256").priv)
	if err != nil {
		t.Fatal(err)
	}
	for n, v := range map[string]any{"kid": "private", "alg": "RS256", "use": "sig"} {
		_ = rsaPriv.Set(n, v)
	}
	es384 := newTestKey(t, "ES384")
	bad := map[string]any{
		"private RSA":            rsaPriv,
		"symmetric":              map[string]any{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "oct", "alg": "HS256", "use": "sig"},
		"RSA 1024":               entry(newTestKey(t, "RS1024"), nil),
		"P-384 key as ES256":     entry(es384, map[string]any{"alg": "ES256"}),
		"no use":                 entry(newTestKey(t, "ES256"), map[string]any{"use": nil}),
		"use enc":                entry(newTestKey(t, "ES256"), map[string]any{"use": "enc"}),
		"no alg":                 entry(newTestKey(t, "ES256"), map[string]any{"alg": nil}),
		"key_ops without verify": entry(newTestKey(t, "ES256"), map[string]any{"key_ops": []string{"encrypt"}}),
		"bad kid":                entry(newTestKey(t, "ES256"), map[string]any{"kid": "../x"}),
		"off-curve point":        entry(newTestKey(t, "ES256"), map[string]any{"x": b64u(make([]byte, 32))}),
		"unknown kty":            map[string]any{"kty": "XYZ", "kid": "xyz", "alg": "ES256", "use": "sig"},
	}
	entries := []any{good.pub}
	for _, e := range bad {
		entries = append(entries, e)
	}
	clk := newFakeClock()
	f := newFakeIssuer(t)
	f.publishRaw(entries...)
	var logs bytes.Buffer
	v := newTestVerifier(t, f, clk, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if got := v.Stats().Keys; got != 1 {
		t.Errorf("Stats().Keys = %d, want 1 of %d entries", got, len(entries))
	}
	if got := strings.Count(logs.String(), "jwks key skipped"); got != len(bad) {
		t.Errorf("%d keys skipped in logs, want %d:\n%s", got, len(bad), logs.String())
	}
	if _, err := v.Verify(t.Context(), sign(t, good, f.claims(clk.Now()), nil)); err != nil {
		t.Errorf("good key: Verify = %v", err)
	}
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		cc, age string
		want    cachePolicy
	}{
		{"", "", cachePolicy{}},
		{"public, max-age=600, must-revalidate", "", cachePolicy{600 * time.Second, true}},
		{"MAX-AGE=60", "20", cachePolicy{40 * time.Second, true}},
		{"max-age=60", "90", cachePolicy{0, true}},
		{"no-store", "", cachePolicy{0, true}},
		{"max-age=99999999999", "", cachePolicy{maxRefresh, true}},
		{"max-age=-1", "", cachePolicy{}},
	}
	for _, tc := range tests {
		h := http.Header{}
		h.Set("Cache-Control", tc.cc)
		h.Set("Age", tc.age)
		if got := parseCacheControl(h); got != tc.want {
			t.Errorf("parseCacheControl(%q, age %q) = %+v, want %+v", tc.cc, tc.age, got, tc.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://auth.example.com":  true,
		"http://127.0.0.1:8080":     true,
		"http://localhost/x":        true,
		"http://[::1]:1":            true,
		"http://auth.example.com":   false,
		"ftp://auth.example.com":    false,
		"https://":                  false,
		"http://127.0.0.1.evil.com": false,
	} {
		if err := checkURL(u, false); (err == nil) != ok {
			t.Errorf("checkURL(%q) = %v, want ok=%v", u, err, ok)
		}
		if err := checkURL(u, true); (err == nil) != (ok || strings.HasPrefix(u, "http://")) {
			t.Errorf("checkURL(%q, plainHTTP) = %v", u, err)
		}
	}
}

// TestVerifier_StopsWithContext: with WithContext, the refresher exits
// when that context ends, Healthy says so, Verify keeps working and Close
// returns.
func TestVerifier_StopsWithContext(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	ctx, cancel := context.WithCancel(t.Context())
	v, err := NewVerifier(t.Context(), f.URL(), WithAudience("api"), WithClock(clk.Now), WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-v.stopped
	if err := v.Healthy(); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Healthy() = %v, want the refresher stopped by cancellation", err)
	}
	if _, err := v.Verify(t.Context(), sign(t, k, f.claims(clk.Now()), nil)); err != nil {
		t.Errorf("Verify after stop = %v", err)
	}
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := v.Verify(t.Context(), sign(t, newTestKey(t, "ES256"), f.claims(clk.Now()), nil)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid after stop: Verify = %v, want ErrUnknownKey", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestVerifier_OutlivesStartupContext is the trap of issue 13: a service
// gives NewVerifier a start-up timeout, and the refresher must go on after
// that timeout. The refresher runs on the fake clock; only the 50 ms
// context is real, and the test waits for it to be done, not for a time.
func TestVerifier_OutlivesStartupContext(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	clk.armed = make(chan time.Duration, 1)
	refreshed := make(chan struct{})
	f := newFakeIssuer(t, k)
	f.set(func(f *fakeIssuer) { f.maxAge = 60 })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	v := newTestVerifierCtx(t, ctx, f, clk, withTimer(clk, func() { refreshed <- struct{}{} }))
	<-clk.armed
	<-ctx.Done()

	// A new key appears; the scheduled refresh after max-age must fetch it.
	k2 := newTestKey(t, "ES256")
	f.publish(k, k2)
	before := f.jwksRequests.Load()
	clk.Advance(60 * time.Second)
	select {
	case <-refreshed:
	case <-v.stopped:
		t.Fatalf("refresher stopped with the start-up context: %v", v.Healthy())
	}
	if got := f.jwksRequests.Load() - before; got != 1 {
		t.Errorf("JWKS requests after max-age = %d, want 1", got)
	}
	if err := v.Healthy(); err != nil {
		t.Errorf("Healthy() = %v", err)
	}
	if _, err := v.Verify(t.Context(), sign(t, k2, f.claims(clk.Now()), nil)); err != nil {
		t.Errorf("token of the new key: Verify = %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Healthy(); err == nil || !errors.Is(err, errClosed) {
		t.Errorf("after Close: Healthy() = %v, want verifier closed", err)
	}
}

// TestVerifier_UnknownKID_WaiterContext: a waiter whose context ends stops
// waiting while the fetch it triggered is still running.
func TestVerifier_UnknownKID_WaiterContext(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	v := newTestVerifier(t, f, clk)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f.set(func(f *fakeIssuer) {
		f.hook = func() {
			entered <- struct{}{}
			<-release
		}
	})
	defer close(release)
	clk.Advance(DefaultMinRefreshInterval)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := v.Verify(ctx, sign(t, newTestKey(t, "ES256"), f.claims(clk.Now()), nil))
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify = %v, want ErrUnknownKey", err)
	}
}
