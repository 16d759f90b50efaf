package outbound_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/outbound"
)

// TestPostForm: a form POST under the fetcher's rules (as back-channel
// logout sends them): the status comes back; a redirect is not followed; private and metadata addresses and a name
// resolving to loopback are refused before anything is sent; the time
// limit holds.
func TestPostForm(t *testing.T) {
	var got url.Values
	var ctype string
	srv, pool, n := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			b, _ := io.ReadAll(r.Body)
			got, _ = url.ParseQuery(string(b))
			ctype = r.Header.Get("Content-Type")
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusTemporaryRedirect)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		default:
			http.Error(w, "no", http.StatusBadRequest)
		}
	})
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, Timeout: 150 * time.Millisecond})
	ctx := t.Context()
	if status, _, err := f.PostForm(ctx, srv.URL+"/ok", url.Values{"logout_token": {"a.b.c"}}, nil); err != nil || status != http.StatusOK {
		t.Fatal(status, err)
	}
	if got.Get("logout_token") != "a.b.c" || ctype != "application/x-www-form-urlencoded" {
		t.Errorf("server got %v (%s)", got, ctype)
	}
	before := n.Load()
	if _, _, err := f.PostForm(ctx, srv.URL+"/redirect", nil, nil); !errors.Is(err, outbound.ErrRedirect) {
		t.Errorf("redirect: %v, want ErrRedirect", err)
	}
	if n.Load() != before+1 {
		t.Errorf("the redirect was followed: %d requests, want 1", n.Load()-before)
	}
	if status, _, err := f.PostForm(ctx, srv.URL+"/bad", nil, nil); err != nil || status != http.StatusBadRequest {
		t.Errorf("400: %d %v, want the status", status, err)
	}
	if _, _, err := f.PostForm(ctx, srv.URL+"/slow", nil, nil); err == nil {
		t.Error("a server slower than the timeout answered in time")
	}
	strict := outbound.New(outbound.Options{RootCAs: pool})
	before = n.Load()
	for _, u := range []string{srv.URL + "/ok", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/ok",
		"https://10.1.2.3/bc", "https://169.254.169.254/latest", "https://[fd00::1]/bc", "http://rp.example/bc"} {
		_, _, err := strict.PostForm(ctx, u, url.Values{"logout_token": {"x"}}, nil)
		if !errors.Is(err, outbound.ErrForbiddenURL) && !errors.Is(err, outbound.ErrForbiddenAddress) {
			t.Errorf("PostForm(%s) = %v, want a refusal", u, err)
		}
	}
	if n.Load() != before {
		t.Errorf("refused URLs reached the server %d times", n.Load()-before)
	}
}
