package authority_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

// failingStore is a real bolt store whose commits can be made to fail after
// the transaction function ran, as a full disk or a failed fsync would.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

var errDiskFull = errors.New("injected: no space left on device")

func (s *failingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Update(ctx, s.wrap(fn))
}

func (s *failingStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Batch(ctx, s.wrap(fn))
}

func (s *failingStore) wrap(fn func(storage.Tx) error) func(storage.Tx) error {
	return func(tx storage.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if s.fail.Load() {
			return errDiskFull // rolls the real transaction back
		}
		return nil
	}
}

// TestRefresh_StorageFailure (SECURITY.md T20): when the commit of a
// refresh rotation fails, the answer is a JSON 500 server_error with no
// token in it, and the presented refresh token is left as it was: once the
// disk recovers, it works, and its family is not treated as reused.
func TestRefresh_StorageFailure(t *testing.T) {
	ctx := t.Context()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := &failingStore{Store: st}
	km, err := keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{3}, keys.KEKSize), Algorithms: []string{"EdDSA"}, MaxTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	logs := &bytes.Buffer{}
	srv, err := authority.New(ctx, authority.Config{Admin: admin.Routes, Issuer: "https://issuer.test", Store: fs,
		JWKS: jwksdoc.NewHandler(km, time.Minute, nil), Signer: km, KeySet: km, Algorithms: []string{"EdDSA"},
		Password: users.PasswordParams{Memory: 64, Time: 1, Threads: 1},
		Logger:   slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := srv.Clients().Create(ctx, clients.Client{ID: "app", SigningAlg: "EdDSA",
		GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken}, Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Users().Create(ctx, users.NewUser{Username: "alice", Password: "a long enough password"}); err != nil {
		t.Fatal(err)
	}
	post := func(form url.Values) (int, map[string]any, string) {
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", secret)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		raw, _ := io.ReadAll(w.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("non-JSON answer %d: %s", w.Code, raw)
		}
		return w.Code, body, string(raw)
	}
	status, body, _ := post(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"a long enough password"}})
	rt, _ := body["refresh_token"].(string)
	if status != http.StatusOK || rt == "" {
		t.Fatalf("login = %d %v", status, body)
	}

	fs.fail.Store(true)
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	status, body, raw := post(refresh)
	if status != http.StatusInternalServerError || body["error"] != "server_error" {
		t.Fatalf("refresh on a failing disk = %d %s, want 500 server_error", status, raw)
	}
	if _, ok := body["access_token"]; ok {
		t.Fatalf("a token was returned although nothing was stored: %s", raw)
	}
	if _, ok := body["refresh_token"]; ok {
		t.Fatalf("a refresh token was returned although nothing was stored: %s", raw)
	}
	if strings.Contains(logs.String(), rt) {
		t.Error("the refresh token reached the log")
	}

	fs.fail.Store(false)
	status, body, raw = post(refresh)
	if status != http.StatusOK || body["refresh_token"] == nil || body["refresh_token"] == rt {
		t.Fatalf("the same refresh token after recovery = %d %s, want 200 with a new refresh token (no reuse detected)", status, raw)
	}
	status, body, _ = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}})
	if status != http.StatusOK {
		t.Errorf("the family is not intact after the failure: %d %v", status, body)
	}
}
