package login_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/sessions"
)

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// serve runs one request through the server's ServeHTTP.
func serve(b *testing.B, e *env, req *http.Request, body string) {
	w := &discardWriter{h: http.Header{}}
	if body != "" {
		req.Body = io.NopCloser(strings.NewReader(body))
	}
	e.srv.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

// benchParallelism × GOMAXPROCS goroutines send requests, as in
// authority's BenchmarkRefresh: a code redemption is a batched, fsync'd
// commit, which only shows its rate under concurrency.
const benchParallelism = 8

// BenchmarkTokenEndpoint compares grant_type=authorization_code (code
// lookup and single-use commit, access token and ID token) with
// client_credentials (one access token) for the same client and algorithm,
// both with many concurrent requests.
func BenchmarkTokenEndpoint(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		e := newEnv(b, envOptions{})
		secret := e.webClient("web", func(c *clients.Client) {
			c.SigningAlg = alg
			c.IDTokenSignedResponseAlg = alg
			c.GrantTypes = []string{clients.GrantAuthorizationCode, clients.GrantClientCredentials}
		})
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("web:"+secret))
		newReq := func() *http.Request {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			return req
		}
		b.Run("client_credentials/"+alg, func(b *testing.B) {
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := newReq()
				for pb.Next() {
					serve(b, e, req, "grant_type=client_credentials&scope=read")
				}
			})
		})
		b.Run("authorization_code/"+alg, func(b *testing.B) {
			verifier, challenge := signettest.PKCE()
			sm := sessions.New(e.store, sessions.Options{Now: e.clock.Now})
			_, sess, err := sm.Start(context.Background(), e.alice.ID, e.clock.Now())
			if err != nil {
				b.Fatal(err)
			}
			_, instance, err := e.srv.LoginClientInstance(context.Background(), "web")
			if err != nil {
				b.Fatal(err)
			}
			bodies := make(chan string, b.N)
			for range b.N {
				code, err := sm.IssueCode(context.Background(), sessions.Code{ClientID: "web", ClientInstance: instance, RedirectURI: "https://app.example/cb", RedirectGiven: true,
					Challenge: challenge, Nonce: "n", Scope: "openid profile", UserID: e.alice.ID, SID: sess.SID, Session: sess.Key, AuthTime: sess.AuthTime})
				if err != nil {
					b.Fatal(err)
				}
				bodies <- url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier}}.Encode()
			}
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := newReq()
				for pb.Next() {
					serve(b, e, req, <-bodies)
				}
			})
		})
	}
}

// BenchmarkLoginPage is GET /oauth2/authorize for a browser without a
// session: request validation, a stored login transaction (one commit)
// and the rendered page.
func BenchmarkLoginPage(b *testing.B) {
	e := newEnv(b, envOptions{})
	e.webClient("web", nil)
	_, challenge := signettest.PKCE()
	target := "/oauth2/authorize?" + authzQuery(challenge, nil).Encode()
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, e, httptest.NewRequest(http.MethodGet, target, nil), "")
		}
	})
}

// BenchmarkLoginPagePasskey is BenchmarkLoginPage with passkeys on (a
// localhost issuer): each page also makes a discoverable-login challenge
// and carries its ceremony in the transaction (passkeylogin.go).
func BenchmarkLoginPagePasskey(b *testing.B) {
	e := newEnv(b, envOptions{factors: true, localhost: true})
	e.webClient("web", nil)
	_, challenge := signettest.PKCE()
	target := "/oauth2/authorize?" + authzQuery(challenge, nil).Encode()
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	if !strings.Contains(w.Body.String(), "sign-in-passkey") {
		b.Fatalf("no passkey button (%d):\n%s", w.Code, w.Body.String())
	}
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, e, httptest.NewRequest(http.MethodGet, target, nil), "")
		}
	})
}

// BenchmarkDevicePoll measures a device's poll of a pending code
// (authorization_pending or slow_down): one committed write each, since
// the poll time is kept in the store for every replica to see. Many
// devices poll at once, as a fleet of terminals waiting for their users.
func BenchmarkDevicePoll(b *testing.B) {
	e := newEnv(b, envOptions{})
	e.deviceClient("tv", nil)
	var bodies []string
	for range 25 {
		_, da, _ := e.startDevice("tv", "", nil)
		bodies = append(bodies, url.Values{"grant_type": {clients.GrantDeviceCode}, "device_code": {da.DeviceCode}, "client_id": {"tv"}}.Encode())
	}
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(bodies[next.Add(1)%int64(len(bodies))]))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := &discardWriter{h: http.Header{}}
			e.srv.ServeHTTP(w, req)
			if w.status != http.StatusBadRequest {
				b.Errorf("poll status %d, want 400 authorization_pending or slow_down", w.status)
				return
			}
		}
	})
}
