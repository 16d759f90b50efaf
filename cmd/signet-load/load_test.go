package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 500 * time.Microsecond}, {.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < -c.want/25 || d > c.want/25 {
			t.Errorf("quantile(%v) = %s, want %s within 4%%", c.q, got, c.want)
		}
	}
	var empty hist
	if got := empty.quantile(.5); got != 0 {
		t.Errorf("empty quantile = %s", got)
	}
}

// TestProcCPU: the CPU time read from /proc grows by what the process burns.
func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start := selfCPU()
	for selfCPU()-start < 300*time.Millisecond {
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 250*time.Millisecond {
		t.Errorf("/proc CPU grew %s after burning 300ms", d)
	}
}

// TestClosedLoop: every wrong answer is counted, and the window ends when
// the work runs out.
func TestClosedLoop(t *testing.T) {
	var left atomic.Int64
	left.Store(30)
	r := closedLoop(context.Background(), 3, time.Minute, func(context.Context, int) error {
		n := left.Add(-1)
		if n < 0 {
			return errNoWork
		}
		if n%3 == 0 {
			return errors.New("status 500")
		}
		return nil
	})
	if r.n != 30 || r.errs != 10 || r.firstErr == nil || r.elapsed > 10*time.Second {
		t.Fatalf("n %d, errs %d, first %v, elapsed %s; want 30, 10", r.n, r.errs, r.firstErr, r.elapsed)
	}
}

// TestBaseline: both bare servers answer the token-shaped POST with the
// small JSON and the JWKS with the given bytes and headers.
func TestBaseline(t *testing.T) {
	dir := t.TempDir()
	jwksBody := `{"keys":[{"kid":"k1"}]}`
	jf, hf := filepath.Join(dir, "jwks"), filepath.Join(dir, "hdr")
	if err := os.WriteFile(jf, []byte(jwksBody), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hf, []byte(`{"Etag":["\"abc\""],"Cache-Control":["public, max-age=300"],"Content-Type":["application/json"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"echo", "nethttp"} {
		t.Run(kind, func(t *testing.T) {
			addr, err := freeAddr()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- runBaseline(ctx, []string{"-kind", kind, "-addr", addr, "-jwks", jf, "-jwks-headers", hf})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			if err := waitOK(ctx, nil, "http://"+addr+"/.well-known/jwks.json", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			c := httpClient(1)
			a, err := want200(do(ctx, c, http.MethodGet, "http://"+addr+"/.well-known/jwks.json", nil, "", ""))
			if err != nil {
				t.Fatal(err)
			}
			if string(a.body) != jwksBody || a.header.Get("ETag") != `"abc"` || a.header.Get("Cache-Control") != "public, max-age=300" {
				t.Errorf("JWKS = %s %v", a.body, a.header)
			}
			a, err = want200(do(ctx, c, http.MethodPost, "http://"+addr+"/oauth2/token", ccForm, "cc-ES256", "s"))
			if err != nil {
				t.Fatal(err)
			}
			if string(a.body) != string(smallJSON) || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				t.Errorf("token-shaped POST = %s %v", a.body, a.header)
			}
		})
	}
}

func TestTamperChangesPayloadOnly(t *testing.T) {
	tok := "aGVhZA.cGF5bG9hZC1wYXlsb2Fk.c2ln"
	got := tamper(tok)
	if got == tok || len(got) != len(tok) || !strings.HasPrefix(got, "aGVhZA.") || !strings.HasSuffix(got, ".c2ln") {
		t.Errorf("tamper(%q) = %q", tok, got)
	}
}

// TestParseBenchFlags: -brief shortens only what is not given, for bench
// and custody alike, and bad values are refused.
func TestParseBenchFlags(t *testing.T) {
	f, err := parseBenchFlags("custody", []string{"-brief", "-rounds", "2"}, nil)
	if err != nil || f.duration != 300*time.Millisecond || f.rounds != 2 || f.concurrency != 4 {
		t.Fatalf("custody -brief -rounds 2: %+v, %v", f, err)
	}
	f, err = parseBenchFlags("bench", nil, func(fs *flag.FlagSet, f *benchFlags) { fs.BoolVar(&f.fleet, "fleet", true, "") })
	if err != nil || f.duration != 5*time.Second || f.rounds != 3 || f.concurrency != 16 || !f.fleet {
		t.Fatalf("bench defaults: %+v, %v", f, err)
	}
	if _, err := parseBenchFlags("custody", []string{"-rounds", "0"}, nil); err == nil {
		t.Fatal("-rounds 0 accepted")
	}
	if _, err := parseBenchFlags("custody", []string{"-fleet"}, nil); err == nil {
		t.Fatal("custody accepted bench's -fleet")
	}
}
