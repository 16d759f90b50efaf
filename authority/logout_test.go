package authority_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

// verifierOf is a jwks verifier of e that reads the revocation feed, on
// e's clock, created now so that its first fetch sees the current feed.
func (e *env) verifierOf(t *testing.T) *jwks.Verifier {
	t.Helper()
	v, err := jwks.NewVerifier(t.Context(), e.issuer, jwks.WithInsecureHTTP(), jwks.WithDenylist(true), jwks.WithDenylistSubjectKey(testFeedKey), jwks.WithClock(e.clock.Now), jwks.WithAudience(testAud))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// TestLogout_LoginRightAfter: a login right after a force logout, a
// password change, or disabling and re-enabling the user (in the same
// second, and in the same nanosecond, on an injected clock) gives a
// session that works: its refresh token rotates, twice, and its access
// token is active at introspection and accepted by a verifier reading
// the feed, while everything from before is dead everywhere.
func TestLogout_LoginRightAfter(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("app", nil)
	triggers := map[string]func(admin, id string) int{
		"logout": func(admin, id string) int {
			s, _, _ := e.admin(http.MethodPost, "/admin/users/"+id+"/logout", admin, nil)
			return s
		},
		"password change": func(admin, id string) int {
			s, _, _ := e.admin(http.MethodPost, "/admin/users/"+id+"/password", admin, map[string]string{"password": testPassword})
			if s == http.StatusNoContent {
				return http.StatusOK
			}
			return s
		},
		"disable and enable": func(admin, id string) int {
			if s, _, _ := e.admin(http.MethodPatch, "/admin/users/"+id, admin, map[string]bool{"disabled": true}); s != http.StatusOK {
				return s
			}
			s, _, _ := e.admin(http.MethodPatch, "/admin/users/"+id, admin, map[string]bool{"disabled": false})
			return s
		},
	}
	n := 0
	for name, trigger := range triggers {
		for _, gap := range []time.Duration{0, 300 * time.Millisecond} {
			n++
			t.Run(name+" gap "+gap.String(), func(t *testing.T) {
				e.clock.Add(10*time.Second - time.Duration(e.clock.Now().Nanosecond()) + 100*time.Millisecond) // x.100s
				user := "user" + string(rune('a'+n))
				id := e.createUser(user)
				oldAT, oldRT := e.login("app", sec, user, nil)
				admin := e.adminToken()
				if s := trigger(admin, id); s != http.StatusOK {
					t.Fatalf("%s = %d", name, s)
				}
				e.clock.Add(gap)
				at, rt := e.login("app", sec, user, nil)
				for i := range 2 {
					s, b := e.refresh("app", sec, rt, nil)
					if s != http.StatusOK {
						t.Fatalf("refresh %d of the new session = %d %v, want 200", i+1, s, b)
					}
					rt = b["refresh_token"].(string)
				}
				if !active(e.introspect(at)) || !active(e.introspect(rt)) {
					t.Error("the new session's tokens are inactive")
				}
				if active(e.introspect(oldAT)) || active(e.introspect(oldRT)) {
					t.Error("the old session's tokens are active")
				}
				if s, b := e.refresh("app", sec, oldRT, nil); s != http.StatusBadRequest {
					t.Errorf("old refresh token = %d %v, want 400", s, b)
				}
				v := e.verifierOf(t)
				if _, err := v.Verify(t.Context(), at); err != nil {
					t.Errorf("verifier on the new access token: %v", err)
				}
				if _, err := v.Verify(t.Context(), oldAT); !errors.Is(err, jwks.ErrRevoked) {
					t.Errorf("verifier on the old access token: %v, want ErrRevoked", err)
				}
			})
		}
	}
}

// TestLogout_TwiceInOneSecond: logout, login, logout, all in one second
// (and in one nanosecond): the second logout ends the session the login
// made, at Signet and at verifiers, although its cutoff falls in the same
// second as the first; a login after it works again.
func TestLogout_TwiceInOneSecond(t *testing.T) {
	for _, gap := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run("gap "+gap.String(), func(t *testing.T) {
			e := newEnv(t, envOptions{adminPasswordOnly: true}) // admin tokens by the password grant
			sec := e.userClient("app", nil)
			// A client without refresh tokens: its access tokens belong to
			// no family, so only the cutoff can end them.
			pwSec := e.userClient("pw", func(c *clients.Client) {
				c.GrantTypes = []string{"password"}
				c.Scopes = append(c.Scopes, authority.AdminScope)
				c.Audiences = append(c.Audiences, authority.AdminAudience)
			})
			id := e.createUser("alice")
			e.setRoles(id, []string{authority.AdminScope}) // issue 16: only an admin user gets the scope
			e.clock.Add(100 * time.Millisecond)
			admin := e.adminToken()
			logout := func() {
				t.Helper()
				if s, _, b := e.admin(http.MethodPost, "/admin/users/"+id+"/logout", admin, nil); s != http.StatusOK {
					t.Fatalf("logout = %d %v", s, b)
				}
			}
			logout()
			e.clock.Add(gap)
			_, midRT := e.login("app", sec, "alice", nil)
			midAT, _ := e.login("pw", pwSec, "alice", nil)
			midAdmin, _ := e.login("pw", pwSec, "alice", map[string][]string{"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}})
			if s, _, b := e.admin(http.MethodGet, "/admin/keys", midAdmin, nil); s != http.StatusOK {
				t.Fatalf("user admin token between the logouts = %d %v", s, b)
			}
			e.clock.Add(gap)
			logout()
			if active(e.introspect(midAT)) || active(e.introspect(midRT)) {
				t.Error("the session between the logouts is active after the second")
			}
			if s, b := e.refresh("app", sec, midRT, nil); s != http.StatusBadRequest {
				t.Errorf("refresh token between the logouts = %d %v, want 400", s, b)
			}
			e.refusedEverywhere(t, "user admin token between the logouts", midAdmin)
			e.clock.Add(gap)
			at, rt := e.login("app", sec, "alice", nil)
			if s, b := e.refresh("app", sec, rt, nil); s != http.StatusOK {
				t.Errorf("refresh after the second logout = %d %v", s, b)
			}
			v := e.verifierOf(t)
			if _, err := v.Verify(t.Context(), midAT); !errors.Is(err, jwks.ErrRevoked) {
				t.Errorf("verifier on the token between the logouts: %v, want ErrRevoked", err)
			}
			if _, err := v.Verify(t.Context(), at); err != nil {
				t.Errorf("verifier on the token after the second logout: %v", err)
			}
		})
	}
}

// hookStore runs a function once before the next Batch: a commit made by
// someone else between a handler's read and its write.
type hookStore struct {
	storage.Store
	before atomic.Pointer[func()]
}

func (s *hookStore) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	if f := s.before.Swap(nil); f != nil {
		(*f)()
	}
	return s.Store.Batch(ctx, fn)
}

// TestLogin_RacingLogout: a logout that commits after a login checked the
// password but before it stored the session wins, whatever the clocks say
// (here all in one nanosecond): the login is refused and leaves no
// session. The next login works.
func TestLogin_RacingLogout(t *testing.T) {
	ctx := t.Context()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs := &hookStore{Store: st}
	instant := time.Date(2026, 5, 1, 12, 0, 0, 500, time.UTC)
	now := func() time.Time { return instant }
	km, err := keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{3}, keys.KEKSize), Algorithms: []string{"EdDSA"}, MaxTokenTTL: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	srv, err := authority.New(ctx, authority.Config{Admin: admin.Routes, Issuer: "https://issuer.test", Store: hs,
		JWKS: jwksdoc.NewHandler(km, time.Minute, nil), Signer: km, KeySet: km, Algorithms: []string{"EdDSA"},
		Password: users.PasswordParams{Memory: 64, Time: 1, Threads: 1}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := srv.Clients().Create(ctx, clients.Client{ID: "app", SigningAlg: "EdDSA",
		GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken}, Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := srv.Users().Create(ctx, users.NewUser{Username: "alice", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	post := func(form url.Values) (int, map[string]any) {
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", secret)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}
	login := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}}

	logout := func() {
		if _, err := authority.RevokeSessions(ctx, st, u.ID, instant); err != nil {
			t.Error(err)
		}
	}
	hs.before.Store(&logout)
	if s, b := post(login); s != http.StatusBadRequest || b["error"] != "invalid_grant" || b["refresh_token"] != nil {
		t.Fatalf("login racing a logout = %d %v, want 400 invalid_grant and no token", s, b)
	}
	s, b := post(login)
	if s != http.StatusOK {
		t.Fatalf("login after the logout = %d %v", s, b)
	}
	if s, b := post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {b["refresh_token"].(string)}}); s != http.StatusOK {
		t.Errorf("refresh after the logout = %d %v", s, b)
	}
}
