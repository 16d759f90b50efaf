package authority_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
)

// adminRoute is one route of the admin API, with a path that names
// nothing in particular: a refused token must be answered before the
// handler looks anything up.
type adminRoute struct{ method, path string }

var adminRoutes = []adminRoute{
	{http.MethodGet, "/admin/keys"},
	{http.MethodPost, "/admin/keys/rotate"},
	{http.MethodPost, "/admin/keys/no-such-kid/revoke"},
	{http.MethodGet, "/admin/clients"},
	{http.MethodPost, "/admin/clients"},
	{http.MethodGet, "/admin/clients/admin"},
	{http.MethodPatch, "/admin/clients/admin"},
	{http.MethodDelete, "/admin/clients/no-such-client"},
	{http.MethodPost, "/admin/clients/admin/secret"},
	{http.MethodGet, "/admin/audit"},
	{http.MethodGet, "/admin/users"},
	{http.MethodPost, "/admin/users"},
	{http.MethodGet, "/admin/users/no-such-user"},
	{http.MethodPatch, "/admin/users/no-such-user"},
	{http.MethodDelete, "/admin/users/no-such-user"},
	{http.MethodPost, "/admin/users/no-such-user/password"},
	{http.MethodPost, "/admin/users/no-such-user/logout"},
}

// refusedEverywhere checks that every endpoint accepting a Signet bearer
// token answers 401 invalid_token to tok.
func (e *env) refusedEverywhere(t *testing.T, what, tok string) {
	t.Helper()
	for _, r := range adminRoutes {
		status, h, body := e.admin(r.method, r.path, tok, nil)
		if status != http.StatusUnauthorized || body["error"] != "invalid_token" || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %s %s = %d %v, want 401 invalid_token", what, r.method, r.path, status, body)
		}
	}
}

// TestBearer_RevokedAndCutOff: an admin token revoked at /oauth2/revoke,
// or issued before its subject's cutoff, is refused at once by every
// endpoint that accepts bearer tokens, for client tokens and user tokens.
func TestBearer_RevokedAndCutOff(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.clock.Add(300 * time.Millisecond)

	// A client_credentials admin token, revoked by its client.
	revoked := e.adminToken()
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", revoked, nil); s != http.StatusOK {
		t.Fatalf("fresh admin token = %d %v", s, b)
	}
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {revoked}}, e.adminID, e.adminSecret); s != http.StatusOK {
		t.Fatalf("revoke = %d %v", s, b)
	}
	e.refusedEverywhere(t, "revoked client token", revoked)

	// A client_credentials admin token issued before its subject's cutoff.
	cut := e.adminToken()
	if _, err := e.srv.Logout(t.Context(), e.adminID); err != nil {
		t.Fatal(err)
	}
	e.refusedEverywhere(t, "client token before cutoff", cut)
	e.clock.Add(time.Second)
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", e.adminToken(), nil); s != http.StatusOK {
		t.Fatalf("admin token after the cutoff = %d %v", s, b)
	}

	// A user's token with the admin scope (a password client may have it).
	sec := e.userClient("console", func(c *authority.Client) {
		c.Scopes = append(c.Scopes, authority.AdminScope)
		c.Audiences = append(c.Audiences, authority.AdminAudience)
	})
	alice := e.createUser("alice")
	adminForm := url.Values{"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}}
	userRevoked, _ := e.login("console", sec, "alice", adminForm)
	userCut, _ := e.login("console", sec, "alice", adminForm)
	for _, tok := range []string{userRevoked, userCut} {
		if s, _, b := e.admin(http.MethodGet, "/admin/keys", tok, nil); s != http.StatusOK {
			t.Fatalf("user admin token = %d %v", s, b)
		}
	}
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {userRevoked}}, "console", sec); s != http.StatusOK {
		t.Fatalf("revoke = %d %v", s, b)
	}
	e.refusedEverywhere(t, "revoked user token", userRevoked)
	if s, _, b := e.admin(http.MethodPost, "/admin/users/"+alice+"/logout", e.adminToken(), nil); s != http.StatusOK {
		t.Fatalf("logout = %d %v", s, b)
	}
	e.refusedEverywhere(t, "user token before cutoff", userCut)
	// Logging in again right after the logout (same instant) works.
	again, _ := e.login("console", sec, "alice", adminForm)
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", again, nil); s != http.StatusOK {
		t.Errorf("user admin token issued after the logout = %d %v", s, b)
	}
}
