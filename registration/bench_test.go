package registration_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/registration"
	"github.com/signet-auth/signet/sessions"
)

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// serve runs one request through the server's handler.
func serve(b *testing.B, e *env, req *http.Request, body string, want int) {
	w := &discardWriter{h: http.Header{}}
	req.Body = io.NopCloser(strings.NewReader(body))
	e.srv.ServeHTTP(w, req)
	if w.status != want {
		b.Fatalf("status %d, want %d", w.status, want)
	}
}

// benchParallelism × GOMAXPROCS goroutines send requests: a registration
// and a code redemption are each one fsync'd commit, whose rate shows
// under concurrency (as in login's BenchmarkTokenEndpoint).
const benchParallelism = 8

// BenchmarkRegister is POST /oauth2/register of a public client (what the
// MCP SDK sends), with the rate limit and the cap off: validation, one
// transaction (the client, its index entry and its audit event).
func BenchmarkRegister(b *testing.B) {
	p := defaultPolicy()
	p.MaxClients = -1
	e := newEnv(b, envOptions{policy: p})
	body, _ := json.Marshal(publicClient())
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Time moves as it does for a server: with the injected clock
			// frozen, every audit event had the same nanosecond, and
			// audit.Put counts the events of its nanosecond to number its
			// key, so each registration scanned all those before it (its
			// cost grew with b.N; signet-load flows showed the whole server
			// registering faster than this handler).
			e.clock.Add(time.Microsecond)
			req := httptest.NewRequest(http.MethodPost, registration.Path, nil)
			req.Header.Set("Content-Type", "application/json")
			serve(b, e, req, string(body), http.StatusCreated)
		}
	})
}

// BenchmarkCodeRedemption compares grant_type=authorization_code for a
// public client known by its metadata document (the document cached: no
// fetch on the hot path) with the same client registered in the store.
func BenchmarkCodeRedemption(b *testing.B) {
	e := newEnv(b, envOptions{})
	doc := map[string]any{"client_name": "Doc Tool", "redirect_uris": []string{"http://127.0.0.1:40001/cb"},
		"grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "none", "scope": "mcp:tools"}
	cimd := e.serveJSON("/tool.json", doc)
	md := publicClient()
	md["redirect_uris"], md["grant_types"] = doc["redirect_uris"], doc["grant_types"]
	a := e.register(md)
	if a.status != http.StatusCreated {
		b.Fatal(a.raw)
	}
	ctx := context.Background()
	for _, tc := range []struct{ name, id string }{{"registered", a.str("client_id")}, {"metadata_document", cimd}} {
		b.Run(tc.name, func(b *testing.B) {
			verifier, challenge := signettest.PKCE()
			sm := sessions.New(e.store, sessions.Options{Now: e.clock.Now})
			_, sess, err := sm.Start(ctx, e.alice.ID, e.clock.Now())
			if err != nil {
				b.Fatal(err)
			}
			_, instance, err := e.srv.LoginClientInstance(ctx, tc.id) // warms the document cache
			if err != nil {
				b.Fatal(err)
			}
			bodies := make(chan string, b.N)
			for range b.N {
				code, err := sm.IssueCode(ctx, sessions.Code{ClientID: tc.id, ClientInstance: instance, RedirectURI: "http://127.0.0.1:40001/cb", RedirectGiven: true,
					Challenge: challenge, Scope: "mcp:tools", UserID: e.alice.ID, SID: sess.SID, Session: sess.Key, AuthTime: sess.AuthTime})
				if err != nil {
					b.Fatal(err)
				}
				bodies <- url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:40001/cb"},
					"code_verifier": {verifier}, "client_id": {tc.id}}.Encode()
			}
			fetches := e.fetchCount("/tool.json")
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					serve(b, e, req, <-bodies, http.StatusOK)
				}
			})
			b.StopTimer()
			if n := e.fetchCount("/tool.json"); n != fetches {
				b.Fatalf("the document was fetched %d times during the run", n-fetches)
			}
		})
	}
}
