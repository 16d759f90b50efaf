package clients_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

func newStore(t *testing.T) storage.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestRegistry_CreateDefaults: Create fills in the defaults, stores only a
// hash of the secret, under the field names existing stores hold.
func TestRegistry_CreateDefaults(t *testing.T) {
	st := newStore(t)
	reg := clients.New(st, clients.Options{Algorithms: []string{"ES256", "RS256"}})
	ctx := t.Context()
	cl, secret, err := reg.Create(ctx, clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 43 || cl.SigningAlg != clients.DefaultAlg || time.Duration(cl.AccessTokenTTL) != clients.DefaultTokenTTL ||
		!slices.Equal(cl.GrantTypes, []string{clients.GrantClientCredentials}) || !slices.Equal(cl.DefaultScopes, []string{"read"}) || cl.DefaultAudience != "api" {
		t.Errorf("created %+v with a secret of %d bytes", cl, len(secret))
	}
	if _, _, err := reg.Create(ctx, clients.Client{ID: "svc", Audiences: []string{"api"}}); !errors.Is(err, clients.ErrExists) {
		t.Errorf("second svc: %v, want ErrExists", err)
	}
	if _, _, err := reg.CreateFirst(ctx, clients.Client{ID: "other", Audiences: []string{"api"}}); !errors.Is(err, clients.ErrNotEmpty) {
		t.Errorf("CreateFirst on a non-empty store: %v, want ErrNotEmpty", err)
	}
	raw := map[string]json.RawMessage{}
	err = st.View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get("clients", "svc")
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"client_id", "grant_types", "token_endpoint_auth_methods", "audiences", "default_audience", "signing_alg", "access_token_ttl", "secret_sha256", "instance"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stored record lacks %s: %v", k, raw)
		}
	}
	if strings.Contains(string(raw["secret_sha256"]), secret) {
		t.Error("the stored record holds the secret")
	}
	if string(raw["access_token_ttl"]) != `"15m0s"` {
		t.Errorf("access_token_ttl stored as %s, want \"15m0s\"", raw["access_token_ttl"])
	}
}

// TestRegistry_Validation: every problem is reported at once, as a
// clients.ValidationError naming the field.
func TestRegistry_Validation(t *testing.T) {
	reg := clients.New(newStore(t), clients.Options{Algorithms: []string{"ES256"}})
	_, _, err := reg.Create(t.Context(), clients.Client{ID: "bad id", GrantTypes: []string{"implicit"}, Scopes: []string{`a"b`},
		Audiences: []string{"api"}, SigningAlg: "RS256", ExtraClaims: map[string]json.RawMessage{"SCOPE": json.RawMessage(`"x"`), "Roles": json.RawMessage(`1`)}})
	var ve *clients.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	for _, want := range []string{
		"invalid client: client_id:", "grant_types: unsupported grant type 'implicit'", "scopes: 'a%22b' is not a valid scope token",
		"signing_alg: 'RS256' is not a live algorithm (live: ES256)", "extra_claims: 'SCOPE' is reserved", "extra_claims: 'Roles' differs only in case",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
	pub := clients.Client{ID: "spa", Public: true, GrantTypes: []string{clients.GrantAuthorizationCode, clients.GrantClientCredentials},
		Scopes: []string{clients.AdminScope}, Audiences: []string{"api"}, RedirectURIs: []string{"http://evil.example/cb"}}
	_, _, err = reg.Create(t.Context(), pub)
	for _, want := range []string{"not client_credentials", "cannot hold signet:admin", "http is only for loopback"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("public client: %v\nwant it to contain %q", err, want)
		}
	}
}

// TestRegistry_RedirectPorts (issue 16, item 8): every redirect URI a
// client registers (redirect_uris and post_logout_redirect_uris, web and
// native) has no port or one from 1 to 65535.
func TestRegistry_RedirectPorts(t *testing.T) {
	reg := clients.New(newStore(t), clients.Options{Algorithms: []string{"ES256"}})
	for i, tc := range []struct {
		uri string
		ok  bool
	}{
		{"http://127.0.0.1/cb", true},
		{"http://127.0.0.1:1/cb", true},
		{"http://[::1]:65535/cb", true},
		{"https://app.example:8443/cb", true},
		{"http://127.0.0.1:0/cb", false},
		{"http://127.0.0.1:99999/cb", false},
		{"http://[::1]:65536/cb", false},
		{"http://[::1]:/cb", false},
		{"https://app.example:0/cb", false},
		{"https://app.example:/cb", false},
		{"https://app.example:00443/cb", false},
	} {
		for _, native := range []bool{false, true} {
			for _, field := range []string{"redirect_uris", "post_logout_redirect_uris"} {
				cl := clients.Client{ID: fmt.Sprintf("c%d-%v-%s", i, native, field[:4]), GrantTypes: []string{clients.GrantAuthorizationCode},
					Scopes: []string{"openid"}, Audiences: []string{"api"}, RedirectURIs: []string{"https://app.example/cb"}}
				if native {
					cl.ApplicationType = clients.AppNative
				}
				if field == "redirect_uris" {
					cl.RedirectURIs = []string{tc.uri}
				} else {
					cl.PostLogoutRedirectURIs = []string{tc.uri}
				}
				_, _, err := reg.Create(t.Context(), cl)
				if tc.ok && err != nil {
					t.Errorf("%s %s (native %v): %v", field, tc.uri, native, err)
				}
				if !tc.ok && (err == nil || !strings.Contains(err.Error(), "port from 1 to 65535")) {
					t.Errorf("%s %s (native %v) = %v, want a port error", field, tc.uri, native, err)
				}
			}
		}
	}
}

// TestRedirectAllowed: exact match, except a native client's loopback
// redirect on any port (RFC 8252 §7.3).
func TestRedirectAllowed(t *testing.T) {
	native := clients.Client{ApplicationType: clients.AppNative, RedirectURIs: []string{"http://127.0.0.1/cb", "https://app.example/cb"}}
	web := native
	web.ApplicationType = clients.AppWeb
	for _, tc := range []struct {
		uri            string
		native, webToo bool
	}{
		{"http://127.0.0.1/cb", true, true},
		{"http://127.0.0.1:51234/cb", true, false},
		{"http://127.0.0.1:51234/other", false, false},
		{"http://127.0.0.1.evil.example/cb", false, false},
		{"http://127.0.0.1@evil.example/cb", false, false},
		{"https://app.example/cb", true, true},
		{"https://app.example/cb/", false, false},
		// Ports 1 to 65535 only (issue 16, item 8).
		{"http://127.0.0.1:1/cb", true, false},
		{"http://127.0.0.1:65535/cb", true, false},
		{"http://127.0.0.1:0/cb", false, false},
		{"http://127.0.0.1:99999/cb", false, false},
		{"http://127.0.0.1:65536/cb", false, false},
		{"http://127.0.0.1:/cb", false, false},
		{"http://127.0.0.1:08080/cb", false, false},
		{"http://127.0.0.1:000000/cb", false, false},
	} {
		if got := native.RedirectAllowed(tc.uri); got != tc.native {
			t.Errorf("native RedirectAllowed(%s) = %v, want %v", tc.uri, got, tc.native)
		}
		if got := web.RedirectAllowed(tc.uri); got != tc.webToo {
			t.Errorf("web RedirectAllowed(%s) = %v, want %v", tc.uri, got, tc.webToo)
		}
	}
}

// TestRegistry_Watch: Watch loads every stored client; then Lookup answers
// from memory, and the registry's own writes update it before they return.
func TestRegistry_Watch(t *testing.T) {
	st := newStore(t)
	ctx := t.Context()
	cli := clients.New(st, clients.Options{}) // the offline CLI's registry, no cache
	if _, _, err := cli.Create(ctx, clients.Client{ID: "old", Audiences: []string{"api"}}); err != nil {
		t.Fatal(err)
	}
	server := clients.New(st, clients.Options{})
	if err := server.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if e, err := server.Lookup(ctx, "old"); err != nil || e.Record.ID != "old" {
		t.Fatalf("Lookup(old) after Watch = %+v, %v", e, err)
	}
	if _, _, err := server.Create(ctx, clients.Client{ID: "svc", Scopes: []string{"a", "b"}, Audiences: []string{"api"},
		ExtraClaims: map[string]json.RawMessage{"tenant": json.RawMessage(`"t1"`)}}); err != nil {
		t.Fatal(err)
	}
	e, err := server.Lookup(ctx, "svc")
	if err != nil || e.DefaultScope != "a b" || string(e.Extra) != `"tenant":"t1"` || !e.GrantCC || e.GrantPW || !e.Basic || !e.Post || len(e.Record.SecretHash) != 32 {
		t.Fatalf("Lookup(svc) = %+v, %v", e, err)
	}
	disabled := true
	if _, err := server.Update(ctx, "svc", clients.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if e, err := server.Lookup(ctx, "svc"); err != nil || !e.Record.Disabled {
		t.Errorf("Lookup(svc) after disabling = %+v, %v", e, err)
	}
	if err := server.Delete(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Lookup(ctx, "svc"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Lookup(svc) after delete = %v, want ErrNotFound", err)
	}
}

// unreadableStore fails every read while fail is set, as a store that has
// lost its quorum does; writes still go through (they were committed before
// the outage, or by another replica).
type unreadableStore struct {
	storage.Store
	fail atomic.Bool
}

func (s *unreadableStore) View(ctx context.Context, fn func(storage.Tx) error) error {
	if s.fail.Load() {
		return fmt.Errorf("etcd scan: %w", storage.ErrUnavailable)
	}
	return s.Store.View(ctx, fn)
}

// TestRegistry_RefreshFailureRecovers: a client whose cache refresh failed
// on a store error is out of the cache (fail closed: a store error, never
// "no such client", which would count as a failed authentication), and is
// read again at its next lookup once the store answers, though no watch
// event ever comes for it again (TestReplica_Etcd_Staleness saw 401s and
// then 429s for a valid client after etcd returned).
func TestRegistry_RefreshFailureRecovers(t *testing.T) {
	st := &unreadableStore{Store: newStore(t)}
	ctx := t.Context()
	server := clients.New(st, clients.Options{})
	if err := server.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.Create(ctx, clients.Client{ID: "svc", Audiences: []string{"api"}}); err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	// The update commits (writes go through); the refresh after it cannot
	// read the client back, as a watch event's refresh during an outage.
	disabled := true
	if _, err := server.Update(ctx, "svc", clients.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	_, err := server.Lookup(ctx, "svc")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Lookup while the store cannot be read = %v, want the store's error (not ErrNotFound)", err)
	}
	st.fail.Store(false)
	e, err := server.Lookup(ctx, "svc")
	if err != nil || !e.Record.Disabled {
		t.Fatalf("Lookup after the store answers again = %+v, %v; want the client as committed (disabled)", e, err)
	}
}
