package authority_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

// downStore is a real bolt store that can be made to stop answering, as
// etcd does when it loses its leader or quorum: every read and write
// fails with the error in down (wrapped as the etcd backend wraps it),
// before anything is read or committed.
type downStore struct {
	storage.Store
	down atomic.Pointer[error]
}

func (s *downStore) fail() error {
	if p := s.down.Load(); p != nil {
		return fmt.Errorf("injected: etcd range: %w", *p)
	}
	return nil
}

func (s *downStore) View(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.View(ctx, fn)
}

func (s *downStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Update(ctx, fn)
}

func (s *downStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Batch(ctx, fn)
}

func (s *downStore) DeleteUnchanged(ctx context.Context, bucket string, recs []storage.Record) (int, error) {
	if err := s.fail(); err != nil {
		return 0, err
	}
	return s.Store.DeleteUnchanged(ctx, bucket, recs)
}

// storeOutages are the store errors that pass: etcd without a leader or
// quorum (storage.ErrUnavailable), a request deadline, a transaction that
// kept conflicting.
var storeOutages = []struct {
	name string
	err  error
}{
	{"unavailable", fmt.Errorf("etcdserver: request timed out, possibly due to previous leader failure: %w", storage.ErrUnavailable)},
	{"deadline", context.DeadlineExceeded},
	{"conflict", fmt.Errorf("reads changed on each of 10 attempts: %w", storage.ErrConflict)},
}

// TestStoreUnavailable_JSONEndpoints (issue 17): every JSON endpoint that
// needs the store answers a store that does not answer with 503
// temporarily_unavailable and Retry-After, never 500 (a handler that
// passed the store's error up as it came answered 500), with no internal
// detail in the body; the outage is one WARN line per episode, never an
// "internal error" per request. The token and device authorization
// endpoints of a replica that has lost its store (the staleness refusal)
// answer the same, logged once too (the device endpoint's refusal was an
// "internal error" per request).
func TestStoreUnavailable_JSONEndpoints(t *testing.T) {
	for _, outage := range storeOutages {
		t.Run(outage.name, func(t *testing.T) {
			b, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ds := &downStore{Store: b}
			e := newEnv(t, envOptions{algs: []string{"ES256"}, store: ds})
			ctx := t.Context()
			secret := e.createClient(clients.Client{ID: "app", Scopes: []string{"openid", "read"}, Audiences: []string{"api"}, Introspect: true,
				GrantTypes:   []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantDeviceCode, clients.GrantClientCredentials, clients.GrantAuthorizationCode},
				RedirectURIs: []string{"https://app.example/cb"}})
			alice, err := e.srv.Users().Create(ctx, users.NewUser{Username: "alice", Password: "a long enough password"})
			if err != nil {
				t.Fatal(err)
			}
			status, _, body := e.tokenRequest(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"a long enough password"}, "scope": {"openid read"}}, "app", secret)
			if status != http.StatusOK {
				t.Fatalf("password grant = %d %v", status, body)
			}
			rt, at := body["refresh_token"].(string), body["access_token"].(string)
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/device_authorization", strings.NewReader("scope=read"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("app", secret)
			status, _, body = e.do(req)
			if status != http.StatusOK {
				t.Fatalf("device authorization = %d %v", status, body)
			}
			deviceCode := body["device_code"].(string)
			admin := e.adminToken()

			form := func(method, path string, v url.Values) func() *http.Request {
				return func() *http.Request {
					req, _ := http.NewRequest(method, e.issuer+path, strings.NewReader(v.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth("app", secret)
					return req
				}
			}
			bearer := func(method, path, tok, body string) func() *http.Request {
				return func() *http.Request {
					req, _ := http.NewRequest(method, e.issuer+path, strings.NewReader(body))
					if body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
					req.Header.Set("Authorization", "Bearer "+tok)
					return req
				}
			}
			rows := []struct {
				name string
				req  func() *http.Request
			}{
				{"token password", form(http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"a long enough password"}})},
				{"token refresh", form(http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})},
				{"token device_code", form(http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}})},
				{"token authorization_code", form(http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {"an-unknown-code"}, "redirect_uri": {"https://app.example/cb"}})},
				{"device authorization", form(http.MethodPost, "/oauth2/device_authorization", url.Values{"scope": {"read"}})},
				{"introspect", form(http.MethodPost, "/oauth2/introspect", url.Values{"token": {rt}})},
				{"revoke", form(http.MethodPost, "/oauth2/revoke", url.Values{"token": {rt}})},
				{"userinfo", bearer(http.MethodGet, "/oauth2/userinfo", at, "")},
				{"admin list users", bearer(http.MethodGet, "/admin/users", admin, "")},
				{"admin get user", bearer(http.MethodGet, "/admin/users/"+alice.ID, admin, "")},
				{"admin create user", bearer(http.MethodPost, "/admin/users", admin, `{"username":"bob","password":"another long password"}`)},
				{"admin update user", bearer(http.MethodPatch, "/admin/users/"+alice.ID, admin, `{"name":"Alice"}`)},
				{"admin delete user", bearer(http.MethodDelete, "/admin/users/"+alice.ID, admin, "")},
				{"admin set password", bearer(http.MethodPost, "/admin/users/"+alice.ID+"/password", admin, `{"password":"yet another long password"}`)},
				{"admin logout user", bearer(http.MethodPost, "/admin/users/"+alice.ID+"/logout", admin, "")},
				{"admin consents", bearer(http.MethodGet, "/admin/users/"+alice.ID+"/consents", admin, "")},
				{"admin withdraw consent", bearer(http.MethodDelete, "/admin/users/"+alice.ID+"/consents/app", admin, "")},
				{"admin create client", bearer(http.MethodPost, "/admin/clients", admin, `{"client_id":"new","grant_types":["client_credentials"],"audiences":["api"]}`)},
				{"admin update client", bearer(http.MethodPatch, "/admin/clients/app", admin, `{"name":"App"}`)},
				{"admin rotate secret", bearer(http.MethodPost, "/admin/clients/app/secret", admin, "")},
				{"admin delete client", bearer(http.MethodDelete, "/admin/clients/app", admin, "")},
				{"admin keys", bearer(http.MethodGet, "/admin/keys", admin, "")},
				{"admin rotate keys", bearer(http.MethodPost, "/admin/keys/rotate", admin, "")},
				{"admin audit", bearer(http.MethodGet, "/admin/audit", admin, "")},
			}

			ds.down.Store(&outage.err)
			for range 2 {
				for _, r := range rows {
					req := r.req()
					resp, err := e.http.Client().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					var raw strings.Builder
					_, _ = io.Copy(&raw, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
						!strings.Contains(raw.String(), `"temporarily_unavailable"`) {
						t.Errorf("%s with the store down = %d %s (Retry-After %q), want 503 temporarily_unavailable with Retry-After",
							r.name, resp.StatusCode, raw.String(), resp.Header.Get("Retry-After"))
					}
					if strings.Contains(raw.String(), "injected") || strings.Contains(raw.String(), "goroutine") {
						t.Errorf("%s: internal detail in the answer: %s", r.name, raw.String())
					}
				}
			}
			logs := e.logs.String()
			if n := strings.Count(logs, `"msg":"internal error"`); n > 0 {
				t.Errorf("%d internal error lines for a store outage:\n%s", n, logs)
			}
			if n := strings.Count(logs, `"condition":"store_unavailable"`); n != 1 {
				t.Errorf("the outage was logged %d times for %d refusals, want once", n, 2*len(rows))
			}
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, `"condition":"store_unavailable"`) && !strings.Contains(line, `"level":"WARN"`) {
					t.Errorf("outage line %s: want WARN", line)
				}
			}
			if errors.Is(outage.err, storage.ErrUnavailable) {
				e.clock.Add(2 * time.Minute) // a quiet minute: the next outage is a new episode
				if status, _, _ := e.do(rows[1].req()); status != http.StatusServiceUnavailable {
					t.Fatalf("refresh in a second outage = %d, want 503", status)
				}
				if n := strings.Count(e.logs.String(), `"condition":"store_unavailable"`); n != 2 {
					t.Errorf("a second episode after a quiet minute: %d outage lines in all, want 2", n)
				}
			}
			ds.down.Store(nil)
			if status, _, body := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "app", secret); status != http.StatusOK {
				t.Errorf("the refused refresh token once the store answers = %d %v, want 200 (nothing was committed)", status, body)
			}
		})
	}
}

// TestStaleRefusal_LoggedOnce (issue 17): a replica that has lost its store
// (Config.CanIssue fails: storage.etcd.max_staleness passed) refuses the
// token and device authorization endpoints alike with 503
// temporarily_unavailable and Retry-After, logged as one WARN line per
// episode; the device endpoint's refusal was an "internal error" line per
// request.
func TestStaleRefusal_LoggedOnce(t *testing.T) {
	stale := errors.New("store unreachable for 31s (storage.etcd.max_staleness 30s)")
	var lost atomic.Bool
	e := newEnv(t, envOptions{algs: []string{"ES256"}, canIssue: func() error {
		if lost.Load() {
			return stale
		}
		return nil
	}})
	secret := e.createClient(clients.Client{ID: "tv", Scopes: []string{"read"}, Audiences: []string{"api"},
		GrantTypes: []string{clients.GrantDeviceCode, clients.GrantClientCredentials}})
	lost.Store(true)
	for range 3 {
		for _, path := range []string{"/oauth2/device_authorization", "/oauth2/token"} {
			v := url.Values{"scope": {"read"}}
			if path == "/oauth2/token" {
				v.Set("grant_type", "client_credentials")
			}
			req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("tv", secret)
			status, h, body := e.do(req)
			if status != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" || h.Get("Retry-After") == "" {
				t.Errorf("%s on a stale replica = %d %v (Retry-After %q), want 503 temporarily_unavailable with Retry-After", path, status, body, h.Get("Retry-After"))
			}
		}
	}
	logs := e.logs.String()
	if n := strings.Count(logs, `"msg":"internal error"`); n > 0 {
		t.Errorf("%d internal error lines for the staleness refusal:\n%s", n, logs)
	}
	if n := strings.Count(logs, `"condition":"store_stale"`); n != 1 {
		t.Errorf("the staleness refusal was logged %d times for 6 refusals, want once:\n%s", n, logs)
	}
}
