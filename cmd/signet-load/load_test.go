package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
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

// TestDocServer: the metadata document names its own URL as client_id,
// is cached for an hour, is served over TLS that the written CA file
// verifies, and every request is counted.
func TestDocServer(t *testing.T) {
	d, err := startDocServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.srv.Close()
	pemBytes, err := os.ReadFile(d.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in the CA file")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for i := range 2 {
		req, err := http.NewRequest(http.MethodGet, d.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := want200(roundTrip(c, req))
		if err != nil {
			t.Fatal(err)
		}
		if a.str("client_id") != d.url || a.header.Get("Cache-Control") != "max-age=3600" {
			t.Errorf("document %s, %v: want client_id %s, max-age=3600", a.body, a.header, d.url)
		}
		if n := d.fetches.Load(); n != int64(i+1) {
			t.Errorf("after %d requests the count is %d", i+1, n)
		}
	}
}

// TestFedIssuerToken: the workload token verifies with the key in the
// issuer's JWK Set file and says what the federation config expects.
func TestFedIssuerToken(t *testing.T) {
	fi, err := newFedIssuer(filepath.Join(t.TempDir(), "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := fi.token("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.ReadFile(fi.jwksFile)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true)))
	if err != nil {
		t.Fatalf("the token does not verify with the JWK Set file: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != fedIssuerName || c["sub"] != fedSubject || c["aud"] != "http://127.0.0.1:1" || c["jti"] != nil {
		t.Errorf("claims %v", c)
	}
}

func TestMedianFloat(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{1.2, 0.8}, 1}, {[]float64{5, 1, 3}, 3}} {
		if got := medianFloat(c.in); got != c.want {
			t.Errorf("medianFloat(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestPickScenarios: -only selects by name in the tool's order, and an
// unknown name is refused rather than skipped.
func TestPickScenarios(t *testing.T) {
	names := func(ss []flowScenario) string {
		var n []string
		for _, s := range ss {
			n = append(n, s.name)
		}
		return strings.Join(n, ",")
	}
	for only, want := range map[string]string{"": "register,cimd,login,grants", "grants,cimd": "cimd,grants", "login": "login"} {
		got, err := pickScenarios(only)
		if err != nil || names(got) != want {
			t.Errorf("pickScenarios(%q) = %s, %v; want %s", only, names(got), err, want)
		}
	}
	for _, bad := range []string{"cimd,nope", ",", "CIMD"} {
		if got, err := pickScenarios(bad); err == nil {
			t.Errorf("pickScenarios(%q) = %s, want an error", bad, names(got))
		}
	}
}
