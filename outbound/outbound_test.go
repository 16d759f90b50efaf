package outbound_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/outbound"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ident(b []byte) (string, error) { return string(b), nil }

// tlsServer is an https server on 127.0.0.1 counting its requests, and a
// pool with its test CA.
func tlsServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *x509.CertPool, *atomic.Int64) {
	t.Helper()
	n := new(atomic.Int64)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool, n
}

var loopbackNet = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func TestFetcher_RefusesURLs(t *testing.T) {
	f := outbound.New(outbound.Options{})
	for _, u := range []string{
		"http://keys.example.com/jwks.json",        // not https
		"http://127.0.0.1:8080/jwks.json",          // loopback http without a loopback issuer
		"https://10.0.0.7/jwks.json",               // private
		"https://172.16.3.4/jwks.json",             // private
		"https://192.168.1.1/jwks.json",            // private
		"https://169.254.169.254/latest/meta-data", // link-local: cloud metadata
		"https://[fd00:ec2::254]/",                 // unique local: AWS IPv6 metadata
		"https://100.100.100.200/",                 // shared address space: a cloud's metadata
		"https://127.0.0.1/jwks.json",              // loopback
		"https://[::1]/jwks.json",                  // loopback
		"https://[::ffff:127.0.0.1]/jwks.json",     // IPv4-mapped loopback
		"https://0.0.0.0/",                         // unspecified
		"https://user:pw@keys.example.com/",        // credentials
		"ftp://keys.example.com/jwks.json",         // scheme
		"/jwks.json",                               // relative
	} {
		if _, err := outbound.Get(t.Context(), f, u, ident); !errors.Is(err, outbound.ErrForbiddenURL) && !errors.Is(err, outbound.ErrForbiddenAddress) {
			t.Errorf("Get(%s) = %v, want a refusal", u, err)
		}
	}
}

// TestFetcher_ResolvedAddressChecked: a name is checked on the address it
// resolves to when dialled (so DNS rebinding cannot slip past a check made
// earlier): localhost resolves to loopback and is refused, and the server
// never sees a request.
func TestFetcher_ResolvedAddressChecked(t *testing.T) {
	srv, pool, n := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{}`)) })
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	f := outbound.New(outbound.Options{RootCAs: pool})
	_, err := outbound.Get(t.Context(), f, "https://localhost"+port+"/jwks.json", ident)
	if !errors.Is(err, outbound.ErrForbiddenAddress) {
		t.Fatalf("Get(localhost) = %v, want ErrForbiddenAddress", err)
	}
	if n.Load() != 0 {
		t.Fatalf("server saw %d requests, want 0", n.Load())
	}
	// A configured network allows it.
	f = outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet})
	if got, err := outbound.Get(t.Context(), f, srv.URL+"/jwks.json", ident); err != nil || got != `{}` {
		t.Fatalf("Get with 127.0.0.0/8 allowed = %q, %v", got, err)
	}
	// An untrusted certificate is refused: RootCAs is the test CA option.
	f = outbound.New(outbound.Options{AllowNetworks: loopbackNet})
	if _, err := outbound.Get(t.Context(), f, srv.URL+"/jwks.json", ident); err == nil {
		t.Fatal("Get without the test CA succeeded")
	}
}

func TestFetcher_NoRedirects(t *testing.T) {
	var hit atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer target.Close()
	srv, pool, _ := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/latest/meta-data", http.StatusFound)
	})
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet})
	if _, err := outbound.Get(t.Context(), f, srv.URL+"/jwks.json", ident); !errors.Is(err, outbound.ErrRedirect) {
		t.Fatalf("Get = %v, want ErrRedirect", err)
	}
	if hit.Load() != 0 {
		t.Fatal("the redirect target was contacted")
	}
}

func TestFetcher_SizeAndTime(t *testing.T) {
	big := strings.Repeat("x", 2<<20)
	zipped := gzipped(t, big)
	release := make(chan struct{})
	srv, pool, _ := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/declared":
			_, _ = w.Write([]byte(big)) // Content-Length known
		case "/chunked":
			for i := 0; i < 64; i++ {
				_, _ = w.Write([]byte(big[:64<<10]))
				w.(http.Flusher).Flush()
			}
		case "/gzip": // 2 MiB of x compress to a few KiB: the limit is on what is read
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(zipped)
		case "/slow":
			// Never a 200: if this handler ever answers, it answers an
			// error the fetcher must report, so only the timeout can
			// make Get fail the way the test wants.
			select {
			case <-r.Context().Done():
			case <-release:
			case <-time.After(5 * time.Second):
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, MaxBody: 64 << 10})
	for _, p := range []string{"/declared", "/chunked", "/gzip"} {
		if _, err := outbound.Get(t.Context(), f, srv.URL+p, ident); !errors.Is(err, outbound.ErrTooLarge) {
			t.Errorf("Get(%s) = %v, want ErrTooLarge", p, err)
		}
	}
	f = outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, Timeout: 300 * time.Millisecond})
	t.Cleanup(func() { close(release) }) // runs before srv.Close, which waits for handlers
	start := time.Now()
	_, err := outbound.Get(t.Context(), f, srv.URL+"/slow", ident)
	var timeout interface{ Timeout() bool }
	if !errors.As(err, &timeout) || !timeout.Timeout() {
		t.Errorf("Get(/slow) = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Get(/slow) took %s, want about the 300ms timeout", d)
	}
}

func TestFetcher_Cache(t *testing.T) {
	var maxAge atomic.Value
	maxAge.Store("max-age=600")
	var conditional atomic.Int64
	srv, pool, n := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", maxAge.Load().(string))
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write([]byte("doc"))
	})
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, MinTTL: time.Minute, MaxTTL: time.Hour, RefetchEvery: 30 * time.Second, Now: c.Now})
	get := func() {
		t.Helper()
		if got, err := outbound.Get(t.Context(), f, srv.URL, ident); err != nil || got != "doc" {
			t.Fatalf("Get = %q, %v", got, err)
		}
	}
	get()
	get()
	if n.Load() != 1 {
		t.Fatalf("%d fetches, want 1 (max-age=600)", n.Load())
	}
	c.Add(601 * time.Second)
	get() // revalidated: 304
	if n.Load() != 2 || conditional.Load() != 1 {
		t.Fatalf("fetches %d, conditional %d; want 2, 1", n.Load(), conditional.Load())
	}
	// max-age below MinTTL is raised to it.
	maxAge.Store("max-age=1")
	c.Add(601 * time.Second)
	get()
	c.Add(30 * time.Second)
	get()
	if n.Load() != 3 {
		t.Fatalf("fetches %d, want 3 (max-age=1 is cached MinTTL)", n.Load())
	}
	// max-age above MaxTTL is lowered to it.
	maxAge.Store("max-age=999999")
	c.Add(2 * time.Minute)
	get()
	c.Add(time.Hour + time.Second)
	get()
	if n.Load() != 5 {
		t.Fatalf("fetches %d, want 5 (max-age=999999 is cached MaxTTL)", n.Load())
	}
	// Refresh (an unknown kid) refetches at most once per RefetchEvery.
	c.Add(time.Minute)
	for range 5 {
		if _, err := outbound.Refresh(t.Context(), f, srv.URL, ident); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() != 6 {
		t.Fatalf("fetches %d after 5 Refresh calls, want 6", n.Load())
	}
	c.Add(31 * time.Second)
	if _, err := outbound.Refresh(t.Context(), f, srv.URL, ident); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 7 {
		t.Fatalf("fetches %d, want 7 (RefetchEvery passed)", n.Load())
	}
}

// TestFetcher_FailureRemembered: a URL that fails is not fetched again for
// RefetchEvery, so requests naming it do not turn into a flood.
func TestFetcher_FailureRemembered(t *testing.T) {
	srv, pool, n := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, RefetchEvery: 30 * time.Second, Now: c.Now})
	for range 5 {
		if _, err := outbound.Get(t.Context(), f, srv.URL, ident); !errors.Is(err, outbound.ErrStatus) {
			t.Fatalf("Get = %v, want ErrStatus", err)
		}
	}
	if n.Load() != 1 {
		t.Fatalf("%d fetches, want 1", n.Load())
	}
	c.Add(31 * time.Second)
	_, _ = outbound.Get(t.Context(), f, srv.URL, ident)
	if n.Load() != 2 {
		t.Fatalf("%d fetches, want 2", n.Load())
	}
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestFetcher_StaleOnFailure: when the owner's server fails, the last good
// document is served for at most MaxTTL past its lifetime, refetched no
// more than once per RefetchEvery meanwhile; then the failure shows.
func TestFetcher_StaleOnFailure(t *testing.T) {
	var down atomic.Bool
	srv, pool, n := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write([]byte("doc"))
	})
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, MinTTL: time.Minute, MaxTTL: time.Hour, RefetchEvery: 30 * time.Second, Now: c.Now})
	if _, err := outbound.Get(t.Context(), f, srv.URL, ident); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	c.Add(2 * time.Minute)
	for range 10 {
		if got, err := outbound.Get(t.Context(), f, srv.URL, ident); err != nil || got != "doc" {
			t.Fatalf("Get while the server fails = %q, %v, want the last good document", got, err)
		}
	}
	if n.Load() != 2 {
		t.Fatalf("%d fetches, want 2 (one failed refetch, then the stale copy)", n.Load())
	}
	c.Add(time.Hour)
	if _, err := outbound.Get(t.Context(), f, srv.URL, ident); !errors.Is(err, outbound.ErrStatus) {
		t.Fatalf("Get past MaxTTL of staleness = %v, want ErrStatus", err)
	}
}

// TestFetcher_Admitted: admit is asked before each network fetch only: a
// fresh document costs nothing, a refused new URL is not fetched and gets
// no cache entry (so it evicts nothing), and a document past its lifetime
// whose refetch is refused is served on until MaxTTL past it.
func TestFetcher_Admitted(t *testing.T) {
	srv, pool, n := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write([]byte("doc " + r.URL.Path))
	})
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, MinTTL: time.Minute, MaxTTL: time.Hour, MaxEntries: 2, Now: c.Now})
	errNo := errors.New("no budget")
	var asked int
	budget := 2
	admit := func(context.Context) error {
		asked++
		if budget == 0 {
			return errNo
		}
		budget--
		return nil
	}
	for _, p := range []string{"/a", "/b", "/a", "/b"} {
		if got, err := outbound.GetAdmitted(t.Context(), f, srv.URL+p, admit, ident); err != nil || got != "doc "+p {
			t.Fatalf("Get %s = %q, %v", p, got, err)
		}
	}
	if asked != 2 || n.Load() != 2 {
		t.Fatalf("admit asked %d times, %d fetches; want 2 and 2 (fresh documents cost nothing)", asked, n.Load())
	}
	for i := range 10 {
		if _, err := outbound.GetAdmitted(t.Context(), f, fmt.Sprintf("%s/new-%d", srv.URL, i), admit, ident); !errors.Is(err, errNo) {
			t.Fatalf("refused new URL = %v, want the admission error", err)
		}
	}
	if n.Load() != 2 {
		t.Fatalf("%d fetches, want 2: refused URLs are not fetched", n.Load())
	}
	// Both warm documents are still cached (a full cache of 2: a refused URL took no slot).
	asked = 0
	for _, p := range []string{"/a", "/b"} {
		if got, err := outbound.GetAdmitted(t.Context(), f, srv.URL+p, admit, ident); err != nil || got != "doc "+p {
			t.Fatalf("warm %s = %q, %v", p, got, err)
		}
	}
	if asked != 0 || n.Load() != 2 {
		t.Fatalf("warm documents: admit asked %d times, %d fetches", asked, n.Load())
	}
	// Past its lifetime, refused: the last good document, until MaxTTL past it.
	c.Add(2 * time.Minute)
	if got, err := outbound.GetAdmitted(t.Context(), f, srv.URL+"/a", admit, ident); err != nil || got != "doc /a" || n.Load() != 2 {
		t.Fatalf("stale, refused = %q, %v, %d fetches", got, err, n.Load())
	}
	c.Add(2 * time.Hour)
	if _, err := outbound.GetAdmitted(t.Context(), f, srv.URL+"/a", admit, ident); !errors.Is(err, errNo) {
		t.Fatalf("past MaxTTL of staleness, refused = %v, want the admission error", err)
	}
	budget = 1
	if got, err := outbound.GetAdmitted(t.Context(), f, srv.URL+"/a", admit, ident); err != nil || got != "doc /a" || n.Load() != 3 {
		t.Fatalf("admitted again = %q, %v, %d fetches", got, err, n.Load())
	}
}

// TestFetcher_PostForm: a token request goes through the same refusals as
// a fetch (URL, resolved address, redirect, body size), and a good one
// returns the status and body of any answer with the form and the
// caller's credentials sent.
func TestFetcher_PostForm(t *testing.T) {
	for _, u := range []string{"http://keys.example.com/token", "https://10.0.0.7/token", "https://169.254.169.254/", "https://user:pw@keys.example.com/"} {
		if _, _, err := outbound.New(outbound.Options{}).PostForm(t.Context(), u, nil, nil); !errors.Is(err, outbound.ErrForbiddenURL) && !errors.Is(err, outbound.ErrForbiddenAddress) {
			t.Errorf("PostForm(%s) = %v, want a refusal", u, err)
		}
	}
	srv, pool, n := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "https://169.254.169.254/", http.StatusTemporaryRedirect)
		case "/big":
			_, _ = w.Write(bytes.Repeat([]byte("x"), 2<<10))
		default:
			user, pass, _ := r.BasicAuth()
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(r.PostFormValue("code") + " " + user + ":" + pass))
		}
	})
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	if _, _, err := outbound.New(outbound.Options{RootCAs: pool}).PostForm(t.Context(), "https://localhost"+port+"/token", nil, nil); !errors.Is(err, outbound.ErrForbiddenAddress) || n.Load() != 0 {
		t.Fatalf("PostForm(localhost) = %v after %d requests, want ErrForbiddenAddress before any", err, n.Load())
	}
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: loopbackNet, MaxBody: 1024})
	if _, _, err := f.PostForm(t.Context(), srv.URL+"/redirect", nil, nil); !errors.Is(err, outbound.ErrRedirect) {
		t.Errorf("redirect: %v, want ErrRedirect", err)
	}
	if _, _, err := f.PostForm(t.Context(), srv.URL+"/big", nil, nil); !errors.Is(err, outbound.ErrTooLarge) {
		t.Errorf("big body: %v, want ErrTooLarge", err)
	}
	status, body, err := f.PostForm(t.Context(), srv.URL+"/token", map[string][]string{"code": {"c1"}}, func(r *http.Request) { r.SetBasicAuth("id", "pw") })
	if err != nil || status != http.StatusBadRequest || string(body) != "c1 id:pw" {
		t.Fatalf("PostForm = %d %q %v", status, body, err)
	}
}
