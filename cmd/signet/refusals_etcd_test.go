package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/users"
)

// TestReplica_Etcd_StoreLostRefusals (issue 17): while etcd does not answer
// (and before storage.etcd.max_staleness stops issuing), every request
// that needs the store answers 503 temporarily_unavailable with
// Retry-After within requestDeadline, never 500 and never a hung
// connection (refresh, introspection and revocation alike); /readyz
// answers at once from the last known state; the refusals are one WARN
// line, not an "internal error" per request; and the refresh token that
// was refused still works once etcd is back (nothing was committed).
func TestReplica_Etcd_StoreLostRefusals(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	m, logs := startEtcdReplica(t, cl, "a", "refuse/", newKEK(t), func(c *config.Config) {
		c.Storage.Etcd.MaxStaleness = "1m" // the store-wide refusal stays out of the way
		c.Storage.Etcd.RequestTimeout = "10s"
	})
	ctx := t.Context()
	_, secret, err := m.Server.Clients().Create(ctx, clients.Client{ID: "app", GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken},
		Scopes: []string{"read"}, Audiences: []string{"api"}, Introspect: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Server.Users().Create(ctx, users.NewUser{Username: "alice", Password: "a long enough password"}); err != nil {
		t.Fatal(err)
	}
	post := func(path string, form url.Values) (int, http.Header, map[string]any, time.Duration) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.URL()+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", secret)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s: not JSON: %d %s", path, resp.StatusCode, raw)
		}
		return resp.StatusCode, resp.Header, body, time.Since(start)
	}
	code, _, body, _ := post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"a long enough password"}})
	if code != http.StatusOK {
		t.Fatalf("login = %d %v", code, body)
	}
	rt := body["refresh_token"].(string)

	cl.Stop(0)
	for range 3 {
		for _, r := range []struct {
			path string
			form url.Values
		}{
			{"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}},
			{"/oauth2/introspect", url.Values{"token": {rt}}},
			{"/oauth2/revoke", url.Values{"token": {rt}}},
		} {
			code, h, body, took := post(r.path, r.form)
			if code != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" || h.Get("Retry-After") == "" {
				t.Errorf("%s with etcd down = %d %v (Retry-After %q), want 503 temporarily_unavailable with Retry-After", r.path, code, body, h.Get("Retry-After"))
			}
			if took > requestDeadline+time.Second {
				t.Errorf("%s with etcd down answered after %s, want within %s", r.path, took.Round(time.Millisecond), requestDeadline)
			}
		}
	}
	start := time.Now()
	resp, err := http.Get(m.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("/readyz with etcd down answered after %s, want at once", took.Round(time.Millisecond))
	}
	if n := strings.Count(logs.String(), `"msg":"internal error"`); n > 0 {
		t.Errorf("%d internal error lines for refusals:\n%s", n, logs)
	}
	if n := strings.Count(logs.String(), `"condition":"store_unavailable"`); n != 1 {
		t.Errorf("store_unavailable logged %d times for 9 refusals, want once:\n%s", n, logs)
	}

	cl.Restart(0)
	for deadline := time.Now().Add(15 * time.Second); ; {
		code, _, body, _ := post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("the refused refresh token after etcd returned = %d %v, want 200 (nothing was committed)", code, body)
		}
		time.Sleep(50 * time.Millisecond) // waiting for etcd to come back, bounded
	}
}
