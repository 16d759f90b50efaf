package login_test

import (
	"github.com/signet-auth/signet/internal/signettest"
	"net/http"
	"strings"
	"testing"
)

// FuzzAuthorize: whatever the query, the authorization endpoint never
// answers 500 and never redirects anywhere but the registered URI.
func FuzzAuthorize(f *testing.F) {
	e := newEnv(f, envOptions{})
	e.webClient("web", nil)
	_, ch := signettest.PKCE()
	for _, s := range []string{
		authzQuery(ch, nil).Encode(),
		"client_id=web&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=token",
		"client_id=web&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%2F..%2Fx&response_type=code",
		"client_id=web&client_id=web&redirect_uri=https://app.example/cb",
		"client_id=web&redirect_uri=https://app.example/cb&prompt=none%20login&max_age=-1&id_token_hint=a.b.c",
		"client_id=%00&redirect_uri=%ff",
	} {
		f.Add(s)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	f.Fuzz(func(t *testing.T, q string) {
		req, err := http.NewRequest(http.MethodGet, e.issuer+"/oauth2/authorize?"+q, nil)
		if err != nil {
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%q: status %d", q, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "https://app.example/cb?") {
			t.Fatalf("%q: redirected to %s", q, loc)
		}
	})
}
