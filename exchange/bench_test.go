package exchange_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkTokenExchange is a whole token exchange through the server's
// ServeHTTP (client authentication, the subject token's signature check
// and its liveness read in the store, scope and audience, act, signing),
// beside the client_credentials request of the same client on the same
// server (authority's BenchmarkClientCredentials), per algorithm of the
// subject token and the client.
func BenchmarkTokenExchange(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		e := newEnv(b)
		webSecret := e.client(clients.Client{ID: "web", GrantTypes: []string{clients.GrantPassword}, Scopes: []string{"read"},
			Audiences: []string{"svc"}, SigningAlg: alg})
		secret := e.client(clients.Client{ID: "svc", GrantTypes: []string{clients.GrantClientCredentials, clients.GrantTokenExchange},
			Scopes: []string{"read"}, Audiences: []string{"svc-self"}, ExchangeAudiences: []string{"next"}, SigningAlg: alg})
		user := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}, "scope": {"read"}}, "web", webSecret)
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+secret))
		for _, tc := range []struct{ name, body string }{
			{"client_credentials", "grant_type=client_credentials&scope=read"},
			{"exchange", exchangeForm(user, "audience", "next").Encode()},
		} {
			b.Run(alg+"/"+tc.name, func(b *testing.B) {
				rd := strings.NewReader(tc.body)
				req := httptest.NewRequest(http.MethodPost, "/oauth2/token", rd)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", auth)
				w := &discardWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					rd.Reset(tc.body)
					req.Body = io.NopCloser(rd)
					clear(w.h)
					w.status = 0
					e.srv.ServeHTTP(w, req)
					if w.status != http.StatusOK {
						b.Fatalf("status %d", w.status)
					}
				}
			})
		}
	}
}
