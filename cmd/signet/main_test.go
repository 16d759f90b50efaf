package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/datadir"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storeopen"
)

// TestMain lets the test binary stand in for the signet binary, so the
// crash test can run the real main in a child process it can SIGKILL.
func TestMain(m *testing.M) {
	// Copied as curl, it is the docs test's curl on a machine without one.
	if filepath.Base(os.Args[0]) == "curl" {
		os.Exit(runCurl(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv("SIGNET_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	if browserNote != "" {
		fmt.Fprintln(os.Stderr, browserNote)
	}
	os.Exit(m.Run())
}

// clock is an injectable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testConfig is a validated configuration on a fresh data dir and a free port.
func testConfig(t testing.TB, edit func(c *config.Config)) config.Config {
	t.Helper()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.HTTP.Addr = "127.0.0.1:0"
	c.Keys.Algorithms = []string{"ES256", "EdDSA"}
	c.Log.Level = "debug"
	if edit != nil {
		edit(&c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return c
}

// startMain runs the real wiring in process on 127.0.0.1.
func startMain(t testing.TB, c config.Config, now func() time.Time) (*Main, *signettest.LogBuffer) {
	t.Helper()
	logs := &signettest.LogBuffer{}
	m := &Main{Config: c, LogOutput: logs, Getenv: func(string) string { return "" }, Now: now}
	if err := m.Open(t.Context()); err != nil {
		m.Close()
		t.Fatalf("open: %v\nlogs:\n%s", err, logs)
	}
	t.Cleanup(func() { m.Close() })
	return m, logs
}

func fetchJWKS(t *testing.T, base string) (jwk.Set, string, []byte) {
	t.Helper()
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks: status %d: %s", resp.StatusCode, body)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	return set, resp.Header.Get("ETag"), body
}

func kids(set jwk.Set) map[string]string {
	out := map[string]string{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		out[k.KeyID()] = k.Algorithm().String()
	}
	return out
}

func TestServe_FreshServerPublishesKeys(t *testing.T) {
	algs := []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"}
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = algs })
	m, logs := startMain(t, c, nil)
	set, etag, body := fetchJWKS(t, m.URL())
	perAlg := map[string]int{}
	for _, alg := range kids(set) {
		perAlg[alg]++
	}
	for _, alg := range algs {
		if perAlg[alg] < 2 {
			t.Errorf("%s: %d keys published, want at least 2", alg, perAlg[alg])
		}
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`, `"k"`} {
		if bytes.Contains(body, []byte(private+":")) {
			t.Errorf("JWKS contains member %s", private)
		}
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil || k.KeyID() != base64.RawURLEncoding.EncodeToString(tp) {
			t.Errorf("kid %s is not the RFC 7638 thumbprint jwx computes (%v)", k.KeyID(), err)
		}
	}
	if _, again, _ := fetchJWKS(t, m.URL()); again != etag {
		t.Errorf("ETag changed without a key change: %s then %s", etag, again)
	}
	defer func() {
		if err := m.Keys.Rotate(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		if _, after, _ := fetchJWKS(t, m.URL()); after == etag {
			t.Error("ETag did not change after a rotation")
		}
	}()
	req, _ := http.NewRequest(http.MethodGet, m.URL()+"/.well-known/jwks.json", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", resp.StatusCode)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nope": 404} {
		resp, err := http.Get(m.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: status %d, want %d: %s", path, resp.StatusCode, want, b)
		}
		if path == "/metrics" {
			for _, metric := range []string{`signet_keys{alg="ES256",state="active"} 1`, "signet_jwks_requests_total 3", "signet_active_key_age_seconds", `signet_key_rotations_total{alg="ES256",reason="schedule"} 0`, `signet_key_rotations_total{alg="ES256",reason="revoke"} 0`, "signet_next_rotation_timestamp_seconds ", `goversion="` + runtime.Version() + `",version="devel"} 1`} {
				if !strings.Contains(string(b), metric) {
					t.Errorf("metrics lack %q", metric)
				}
			}
		}
	}
	if info, err := os.Stat(filepath.Join(c.DataDir, "kek")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("kek file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "created a new key-encryption key file") {
		t.Error("first run did not log the KEK file it created")
	}
}

// TestServe_RotationOverTime drives the rotation and purge jobs with an
// injected clock and checks the published set over real HTTP after each.
func TestServe_RotationOverTime(t *testing.T) {
	clk := &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	c := testConfig(t, func(c *config.Config) {
		c.Keys.Algorithms = []string{"ES256"}
		c.Keys.Rotation.Schedule = "@every 10m"
		c.Keys.Purge.Leeway = "1m"
		c.Tokens.MaxTTL = "15m"
		c.JWKS.MaxAge = "60s"
	})
	m, logs := startMain(t, c, clk.Now)
	ctx := t.Context()
	const grace = 16 * time.Minute // max_ttl + leeway

	type issued struct {
		token   []byte
		kid     string
		retired time.Time
	}
	var tokens []issued
	for i := range 6 {
		before := m.Keys.Current()
		var pendingKID string
		for _, k := range before {
			if k.State == keys.StatePending {
				pendingKID = k.KID
			}
		}
		// A token signed now with the active key, as the token endpoint would.
		sk, err := m.Keys.SigningKey("ES256")
		if err != nil {
			t.Fatal(err)
		}
		tok := jwt.New()
		_ = tok.Set(jwt.IssuerKey, c.Issuer)
		_ = tok.Set(jwt.ExpirationKey, clk.Now().Add(15*time.Minute))
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, sk))
		if err != nil {
			t.Fatal(err)
		}

		clk.Add(10 * time.Minute)
		m.rotateJob(ctx)
		m.purgeJob(ctx)
		tokens = append(tokens, issued{signed, sk.KeyID(), clk.Now()})

		if now, _ := m.Keys.SigningKey("ES256"); now.KeyID() != pendingKID {
			t.Fatalf("rotation %d: active %s, want previous pending %s", i, now.KeyID(), pendingKID)
		}
		set, _, _ := fetchJWKS(t, m.URL())
		published := kids(set)
		for _, it := range tokens {
			inGrace := clk.Now().Before(it.retired.Add(grace))
			if _, ok := published[it.kid]; ok != inGrace {
				t.Errorf("rotation %d: key %s published=%v, want %v", i, it.kid, ok, inGrace)
			}
			_, err := jwt.Parse(it.token, jwt.WithKeySet(set), jwt.WithValidate(false))
			if inGrace && err != nil {
				t.Errorf("rotation %d: token by retired key %s no longer verifies: %v", i, it.kid, err)
			}
			if !inGrace && err == nil {
				t.Errorf("rotation %d: token by purged key %s still verifies", i, it.kid)
			}
		}
	}
	if got := m.Keys.Rotations(); got != 6 {
		t.Errorf("rotations = %d, want 6", got)
	}
	metrics := metricsBody(t, m.URL())
	for _, want := range []string{
		`signet_key_rotations_total{alg="ES256",reason="schedule"} 6`,
		`signet_key_rotations_total{alg="ES256",reason="manual"} 0`,
		`signet_key_rotations_total{alg="ES256",reason="revoke"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The next rotation is the one the last rotation stored with the keys:
	// "@every 10m" after it, on the injected clock (issue 17: the schedule
	// belongs to the fleet, not to one replica's cron).
	var next int64
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "signet_next_rotation_timestamp_seconds "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			next = int64(f)
		}
	}
	if want := clk.Now().Add(10 * time.Minute).Unix(); next != want {
		t.Errorf("signet_next_rotation_timestamp_seconds = %d, want %d (10m after the last rotation)", next, want)
	}
	if got := strings.Count(logs.String(), `"msg":"next rotation"`); got != 6 {
		t.Errorf("%d \"next rotation\" log lines after 6 scheduled rotations, want 6", got)
	}
	if !strings.Contains(logs.String(), `"next_rotation":"`) {
		t.Error("the start log does not say when the next rotation is")
	}
}

func TestServe_RestartKeepsKeys(t *testing.T) {
	c := testConfig(t, nil)
	m, _ := startMain(t, c, nil)
	if err := m.Keys.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	before := m.Keys.Current()
	set1, _, body1 := fetchJWKS(t, m.URL())
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, logs := startMain(t, c, nil)
	after := m2.Keys.Current()
	if len(before) != len(after) {
		t.Fatalf("restart: %d keys, want %d", len(after), len(before))
	}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("restart: key %d = %+v, want %+v", i, after[i], before[i])
		}
	}
	set2, _, body2 := fetchJWKS(t, m2.URL())
	if !bytes.Equal(body1, body2) || set1.Len() != set2.Len() {
		t.Error("JWKS changed across a restart")
	}
	if strings.Contains(logs.String(), `"msg":"key created"`) {
		t.Error("restart created a key")
	}
}

func TestServe_WrongKEK(t *testing.T) {
	c := testConfig(t, nil)
	m, _ := startMain(t, c, nil)
	m.Close()
	// Replace the KEK file with another valid KEK.
	if err := datadir.WritePrivateFile(c.KEKPath(), []byte(strings.Repeat("A", 43)+"=\n")); err != nil {
		t.Fatal(err)
	}
	m2 := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	err := m2.Open(t.Context())
	m2.Close()
	if err == nil {
		t.Fatal("started with the wrong KEK")
	}
	for _, want := range []string{"kid", "SIGNET_KEK", "keys.encryption_key_file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// A missing KEK for a store with keys is refused too, and no key set is made.
	os.Remove(c.KEKPath())
	m3 := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	err = m3.Open(t.Context())
	m3.Close()
	if err == nil || !strings.Contains(err.Error(), "no key-encryption key") {
		t.Fatalf("missing KEK: %v", err)
	}
	if _, err := os.Stat(c.KEKPath()); err == nil {
		t.Fatal("a new KEK was created for a store that has keys")
	}
}

func TestServe_KEKFromEnv(t *testing.T) {
	c := testConfig(t, nil)
	kek := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: func(k string) string {
		if k == "SIGNET_KEK" {
			return kek
		}
		return ""
	}}
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := os.Stat(c.KEKPath()); err == nil {
		t.Error("a KEK file was written although SIGNET_KEK was set")
	}
}

func TestServe_GracefulShutdown(t *testing.T) {
	c := testConfig(t, nil)
	m, _ := startMain(t, c, nil)
	url := m.URL()
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("server still answers after Close")
	}
	// The store was closed: the database can be opened again at once.
	st, err := storeopen.OpenBolt(c.BoltPath(), 100*time.Millisecond)
	if err != nil {
		t.Fatalf("reopen after shutdown: %v", err)
	}
	st.Close()
}

func TestRun_Keys_Offline(t *testing.T) {
	c := testConfig(t, nil)
	m, _ := startMain(t, c, nil)
	var activeES string
	for _, k := range m.Keys.Current() {
		if k.State == keys.StateActive && k.Alg == "ES256" {
			activeES = k.KID
		}
	}
	// While the server holds the database: a clear error, not a hang.
	var out, errOut bytes.Buffer
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	start := time.Now()
	code := run(t.Context(), []string{"keys", "list", "--data-dir", c.DataDir}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "in use by another signet process") {
		t.Fatalf("keys list on a held store: code %d, stderr %q", code, errOut.String())
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("keys list waited too long for the lock")
	}
	m.Close()

	out.Reset()
	errOut.Reset()
	if code := run(t.Context(), []string{"keys", "list", "--json", "--data-dir", c.DataDir}, &out, &errOut); code != 0 {
		t.Fatalf("keys list: code %d: %s", code, errOut.String())
	}
	var listed []keys.Info
	if err := json.Unmarshal(out.Bytes(), &listed); err != nil || len(listed) != 4 {
		t.Fatalf("keys list --json: %v, %d keys: %s", err, len(listed), out.String())
	}
	if code := run(t.Context(), []string{"keys", "revoke", "--data-dir", c.DataDir, activeES}, &out, &errOut); code != 0 {
		t.Fatalf("keys revoke: code %d: %s", code, errOut.String())
	}
	if code := run(t.Context(), []string{"keys", "rotate", "--force", "--data-dir", c.DataDir}, &out, &errOut); code != 0 {
		t.Fatalf("keys rotate: code %d: %s", code, errOut.String())
	}
	st, err := storeopen.OpenBolt(c.BoltPath(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	infos, _ := keys.List(context.Background(), st)
	states := map[string]keys.State{}
	active := map[string]int{}
	for _, k := range infos {
		states[k.KID] = k.State
		if k.State == keys.StateActive {
			active[k.Alg]++
		}
	}
	if states[activeES] != keys.StateRevoked {
		t.Errorf("revoked key is %s", states[activeES])
	}
	if active["ES256"] != 1 || active["EdDSA"] != 1 {
		t.Errorf("active keys per alg after CLI: %v", active)
	}
	if code := run(t.Context(), []string{"keys", "revoke", "--data-dir", c.DataDir}, &out, &errOut); code != 2 {
		t.Errorf("keys revoke without KID: code %d, want 2", code)
	}
}
