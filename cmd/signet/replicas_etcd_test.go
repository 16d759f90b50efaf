package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// startEtcdReplica runs the real wiring in process on a shared etcd store.
func startEtcdReplica(t *testing.T, cl *etcdtest.Cluster, name, prefix string, kek []byte, edit func(c *config.Config)) (*Main, *signettest.LogBuffer) {
	t.Helper()
	return startEtcdReplicaAt(t, cl, name, prefix, kek, nil, edit)
}

// startEtcdReplicaAt is startEtcdReplica on the clock now (nil: time.Now).
func startEtcdReplicaAt(t *testing.T, cl *etcdtest.Cluster, name, prefix string, kek []byte, now func() time.Time, edit func(c *config.Config)) (*Main, *signettest.LogBuffer) {
	t.Helper()
	c := testConfig(t, func(c *config.Config) {
		c.Storage.Backend = "etcd"
		c.Storage.Etcd.Endpoints = cl.Endpoints()
		c.Storage.Etcd.Prefix = prefix
		c.Audit.Replica = name
		if edit != nil {
			edit(c)
		}
	})
	enc := base64.StdEncoding.EncodeToString(kek)
	logs := &signettest.LogBuffer{}
	m := &Main{Config: c, LogOutput: logs, Now: now, Getenv: func(k string) string {
		if k == "SIGNET_KEK" {
			return enc
		}
		return ""
	}}
	if err := m.Open(t.Context()); err != nil {
		m.Close()
		t.Fatalf("open %s: %v\nlogs:\n%s", name, err, logs)
	}
	t.Cleanup(func() { m.Close() })
	return m, logs
}

func newKEK(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestReplicas_Etcd_SameJWKSAfterRotation: two replicas on one etcd serve
// byte-identical JWKS with the same strong ETag after a rotation made
// through one of them, and replica B answers 304 to replica A's ETag (a
// conditional request that a load balancer sends to another replica).
func TestReplicas_Etcd_SameJWKSAfterRotation(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	a, _ := startEtcdReplica(t, cl, "a", "jwks-same/", kek, nil)
	b, _ := startEtcdReplica(t, cl, "b", "jwks-same/", kek, nil)
	for round := range 3 {
		if err := a.Keys.Rotate(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		_, etagA, bodyA := fetchJWKS(t, a.URL())
		// B applies the change from its watch; wait for it, bounded.
		var bodyB []byte
		var etagB string
		for deadline := time.Now().Add(5 * time.Second); ; {
			_, etagB, bodyB = fetchJWKS(t, b.URL())
			if bytes.Equal(bodyA, bodyB) || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond) // polling with a deadline
		}
		took := time.Since(committed)
		t.Logf("round %d: replica B serves the new JWKS %s after the commit", round, took.Round(time.Millisecond))
		if !bytes.Equal(bodyA, bodyB) {
			t.Fatalf("round %d: JWKS differ:\nA %s\nB %s", round, bodyA, bodyB)
		}
		if etagA == "" || strings.HasPrefix(etagA, "W/") || etagA != etagB {
			t.Fatalf("round %d: ETags %q and %q: want the same strong ETag", round, etagA, etagB)
		}
		if took > time.Second {
			t.Errorf("round %d: replica B took %s to apply a rotation, want under 1s", round, took)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b.URL()+"/.well-known/jwks.json", nil)
		req.Header.Set("If-None-Match", etagA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("round %d: replica B answers %d to replica A's ETag, want 304", round, resp.StatusCode)
		}
	}
}

// TestReplica_Etcd_Staleness: a replica that has lost etcd for longer than
// storage.etcd.max_staleness reports not ready and refuses tokens with 503
// temporarily_unavailable, keeps serving its JWKS, and recovers by itself
// when etcd comes back.
func TestReplica_Etcd_Staleness(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	m, logs := startEtcdReplica(t, cl, "a", "stale/", newKEK(t), func(c *config.Config) {
		c.Storage.Etcd.MaxStaleness = "1s"
		c.Storage.Etcd.RequestTimeout = "500ms"
	})
	id, secret, _, err := authority.EnsureDemoClient(t.Context(), m.Server.Clients())
	if err != nil {
		t.Fatal(err)
	}
	token := func() (int, string) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {authority.DemoScope}}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, m.URL()+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error       string `json:"error"`
			AccessToken string `json:"access_token"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("token response is not JSON: %s", raw)
		}
		return resp.StatusCode, body.Error
	}
	status := func(path string) int {
		resp, err := http.Get(m.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code, e := token(); code != http.StatusOK {
		t.Fatalf("token before the outage: %d %s", code, e)
	}
	waitUntil := func(what string, start time.Time, cond func() bool) time.Duration {
		for deadline := start.Add(15 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nlogs:\n%s", what, logs)
			}
			time.Sleep(20 * time.Millisecond) // polling with a deadline
		}
		return time.Since(start)
	}

	stopping := time.Now()
	cl.Stop(0) // embedded etcd's Close takes seconds with clients attached
	stopTook := time.Since(stopping)
	stopped := time.Now()
	refusedAfter := waitUntil("503 temporarily_unavailable", stopped, func() bool {
		code, e := token()
		return code == http.StatusServiceUnavailable && e == "temporarily_unavailable"
	})
	if code := status("/readyz"); code == http.StatusOK {
		t.Error("/readyz is 200 while tokens are refused")
	}
	for range 5 {
		token()
	}
	// A deliberate refusal: one WARN line for the episode, not an ERROR
	// "internal error" per request (issue 17).
	if n := strings.Count(logs.String(), `"msg":"internal error"`); n > 0 {
		t.Errorf("%d internal error lines for the staleness refusal", n)
	}
	if n := strings.Count(logs.String(), `"condition":"store_stale"`); n != 1 {
		t.Errorf("store_stale logged %d times, want once:\n%s", n, logs)
	}
	if code := status("/.well-known/jwks.json"); code != http.StatusOK {
		t.Errorf("JWKS answers %d while etcd is down, want 200 (verifiers need it most then)", code)
	}
	restarted := time.Now()
	cl.Restart(0)
	recoveredAfter := waitUntil("tokens again", restarted, func() bool { code, _ := token(); return code == http.StatusOK })
	waitUntil("ready again", time.Now(), func() bool { return status("/readyz") == http.StatusOK })
	t.Logf("stopping etcd took %s; tokens refused %s after it returned (max_staleness 1s); issuing again %s after it restarted", stopTook.Round(time.Millisecond), refusedAfter.Round(time.Millisecond), recoveredAfter.Round(time.Millisecond))
}

// TestReplicas_Etcd_RefreshAcrossReplicas: refresh-token rotation and reuse
// detection hold across replicas. A refresh token used at replica A and
// replayed at replica B revokes the family (the token A returned stops
// working at C), and 50 concurrent uses of one refresh token spread over
// three replicas give exactly one success.
func TestReplicas_Etcd_RefreshAcrossReplicas(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	t.Setenv("SIGNET_KEK", base64.StdEncoding.EncodeToString(kek))
	var rs []*Main
	for _, name := range []string{"a", "b", "c"} {
		m, _ := startEtcdReplica(t, cl, name, "refresh/", kek, nil)
		rs = append(rs, m)
	}
	cfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nstorage:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: refresh/\nkeys:\n  algorithms: [ES256, EdDSA]\n",
		t.TempDir(), strings.Join(cl.Endpoints(), ", ")))
	out, _, err := clientsCmd(t, "create", "--config", cfg, "--id", "app", "--grant", "password", "--grant", "refresh_token",
		"--scope", "read", "--audience", "API", "--refresh-reuse-grace", "0s")
	if err != nil {
		t.Fatal(err)
	}
	app := decodeSecret(t, out)
	if _, _, err := usersCmd(t, "a long password\n", "create", "--config", cfg, "--username", "alice"); err != nil {
		t.Fatal(err)
	}
	post := func(m *Main, form url.Values) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, m.URL()+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(app.ClientID, app.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	login := func(m *Main) string {
		t.Helper()
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"a long password"}, "scope": {"read"}}
		// The replicas learn of the client and user from the watch.
		for deadline := time.Now().Add(5 * time.Second); ; {
			code, body := post(m, form)
			if code == http.StatusOK {
				return body["refresh_token"].(string)
			}
			if time.Now().After(deadline) {
				t.Fatalf("login at %s: %d %v", m.URL(), code, body)
			}
			time.Sleep(10 * time.Millisecond) // waiting for the watch, bounded
		}
	}
	refresh := func(m *Main, rt string) (int, map[string]any) {
		return post(m, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	for _, m := range rs {
		login(m)
	}

	rt1 := login(rs[0])
	code, body := refresh(rs[0], rt1)
	if code != http.StatusOK {
		t.Fatalf("refresh at A: %d %v", code, body)
	}
	rt2 := body["refresh_token"].(string)
	if code, body := refresh(rs[1], rt1); code != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("replay at B: %d %v, want 400 invalid_grant", code, body)
	}
	if code, body := refresh(rs[2], rt2); code != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("the family's newest token at C after a replay at B: %d %v, want 400 invalid_grant", code, body)
	}

	rt := login(rs[0])
	start := make(chan struct{})
	var wg sync.WaitGroup
	var ok, refused, other atomic.Int64
	for i := range 50 {
		wg.Go(func() {
			<-start
			switch code, _ := refresh(rs[i%3], rt); code {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusBadRequest:
				refused.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("50 concurrent uses over 3 replicas: %d succeeded, %d refused, %d other", ok.Load(), refused.Load(), other.Load())
	if ok.Load() != 1 || other.Load() != 0 {
		t.Fatalf("%d successes and %d other answers, want exactly one success and 49 invalid_grant", ok.Load(), other.Load())
	}
}
