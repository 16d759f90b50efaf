package authority_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/users"
)

// Issue 16: a grant is re-checked against the client, the user and the
// consent as they are when it is used. These tests drive the password and
// refresh grants and the admin API; the code grant's rows are in package
// login (TestGrants_* there).

// opsClient is a client an operator allowed the admin scope and the
// password grant: the shape of issue 16 item 1.
func (e *env) opsClient() string {
	return e.userClient("ops", func(c *clients.Client) {
		c.Scopes = []string{authority.AdminScope, "read"}
		c.DefaultScopes = []string{authority.AdminScope, "read"}
		c.Audiences = []string{authority.AdminAudience, testAud}
		c.DefaultAudience = authority.AdminAudience
	})
}

func (e *env) setRoles(id string, roles []string) {
	e.t.Helper()
	if _, _, err := e.srv.Users().Update(e.t.Context(), id, users.Patch{Roles: &roles}); err != nil {
		e.t.Fatal(err)
	}
}

// TestPrivilegedScope_PasswordGrant is issue 16 item 1: an ordinary user
// gets no admin token through a client allowed the password grant and
// signet:admin, by asking or by default; a user holding the role
// signet:admin does, the audit trail names that user as the actor, and
// taking the role away ends both the refresh and the access token's use.
func TestPrivilegedScope_PasswordGrant(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.opsClient()
	e.createUser("bob")
	adminForm := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {testPassword},
		"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}}
	if st, _, body := e.post("/oauth2/token", adminForm, "ops", sec); st != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("ordinary user asking for %s = %d %v, want 400 invalid_scope", authority.AdminScope, st, body)
	}
	// By default: the admin scope is dropped, so the admin API refuses.
	at, _ := e.login("ops", sec, "bob", nil)
	if sc := decodePayload(t, at)["scope"]; sc != "read" {
		t.Errorf("ordinary user's default scope = %v, want read", sc)
	}
	if st, _, _ := e.admin(http.MethodGet, "/admin/users", at, nil); st != http.StatusForbidden {
		t.Errorf("ordinary user's token at GET /admin/users = %d, want 403", st)
	}
	if st, _, _ := e.admin(http.MethodPost, "/admin/users", at, map[string]any{"username": "mallory", "password": testPassword}); st != http.StatusForbidden {
		t.Errorf("ordinary user's token at POST /admin/users = %d, want 403", st)
	}

	carol := e.createUser("carol")
	e.setRoles(carol, []string{"staff", authority.AdminScope})
	f := url.Values{"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}}
	at, rt := e.login("ops", sec, "carol", f)
	if st, _, body := e.admin(http.MethodPost, "/admin/users", at, map[string]any{"username": "dave", "password": testPassword}); st != http.StatusCreated {
		t.Fatalf("admin user's token at POST /admin/users = %d %v, want 201", st, body)
	}
	ev, ok := e.auditEvent("users.create")
	if !ok || ev.Actor != "user:"+carol || ev.Client != "ops" {
		t.Errorf("audit of a user's admin action: actor %q client %q, want user:%s via ops", ev.Actor, ev.Client, carol)
	}
	st, body := e.refresh("ops", sec, rt, nil)
	if st != http.StatusOK || body["scope"] != authority.AdminScope {
		t.Fatalf("admin user's refresh = %d %v", st, body)
	}
	rt = body["refresh_token"].(string)

	// The role taken away: the access token already issued stops working
	// at the admin API, and a refresh drops the scope (or refuses it by name).
	e.setRoles(carol, []string{"staff"})
	if st, _, _ := e.admin(http.MethodGet, "/admin/users", at, nil); st != http.StatusForbidden {
		t.Errorf("token of a user who lost the admin role = %d, want 403", st)
	}
	if ev, ok := e.auditEvent("admin.access"); !ok || ev.Actor != "user:"+carol || ev.Client != "ops" || ev.Outcome != "denied" {
		t.Errorf("refused admin access audited as %+v", ev)
	}
	if st, body := e.refresh("ops", sec, rt, url.Values{"scope": {authority.AdminScope}}); st != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("refresh naming %s after the role was taken = %d %v, want invalid_scope", authority.AdminScope, st, body)
	}
	st, body = e.refresh("ops", sec, rt, nil)
	if sc, _ := body["scope"].(string); st != http.StatusOK || strings.Contains(sc, authority.AdminScope) {
		t.Errorf("refresh after the role was taken = %d %v, want 200 without %s", st, body, authority.AdminScope)
	}
}

// TestPrivilegedScope_EveryPasswordAndRefreshRow is the class test on the
// grants of this package: every way a user token could come to carry a
// privileged scope (signet:admin, and any scope in the signet: namespace).
func TestPrivilegedScope_EveryPasswordAndRefreshRow(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("multi", func(c *clients.Client) {
		c.Scopes = []string{authority.AdminScope, "signet:audit", "read"}
		c.DefaultScopes = []string{authority.AdminScope, "signet:audit", "read"}
		c.Audiences = []string{authority.AdminAudience, testAud}
	})
	e.createUser("plain")
	partial := e.createUser("partial")
	e.setRoles(partial, []string{"signet:audit"})
	full := e.createUser("full")
	e.setRoles(full, []string{authority.AdminScope, "signet:audit"})
	rows := []struct {
		name, user, scope string
		wantErr           string
		wantScope         string
	}{
		{"plain user, default scopes", "plain", "", "", "read"},
		{"plain user names signet:admin", "plain", authority.AdminScope, "invalid_scope", ""},
		{"plain user names signet:audit", "plain", "signet:audit read", "invalid_scope", ""},
		{"partial role, default scopes", "partial", "", "", "signet:audit read"},
		{"partial role names signet:admin", "partial", "read " + authority.AdminScope, "invalid_scope", ""},
		{"full roles, default scopes", "full", "", "", authority.AdminScope + " signet:audit read"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			f := url.Values{"grant_type": {"password"}, "username": {row.user}, "password": {testPassword}}
			if row.scope != "" {
				f.Set("scope", row.scope)
			}
			st, _, body := e.post("/oauth2/token", f, "multi", sec)
			if row.wantErr != "" {
				if st != http.StatusBadRequest || body["error"] != row.wantErr {
					t.Fatalf("password grant = %d %v, want %s", st, body, row.wantErr)
				}
				return
			}
			if st != http.StatusOK || body["scope"] != row.wantScope || decodePayload(t, body["access_token"].(string))["scope"] != row.wantScope {
				t.Fatalf("password grant = %d %v, want scope %q", st, body, row.wantScope)
			}
			// The refresh grants it again against the user as stored now.
			st, body = e.refresh("multi", sec, body["refresh_token"].(string), nil)
			if st != http.StatusOK || body["scope"] != row.wantScope {
				t.Fatalf("refresh = %d %v, want scope %q", st, body, row.wantScope)
			}
		})
	}
	// A user disabled holds no privileged scope: disabling logs out, so
	// the refresh fails outright (the family ends).
	_, rt := e.login("multi", sec, "full", nil)
	disabled := true
	if _, _, err := e.srv.Users().Update(t.Context(), full, users.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if st, body := e.refresh("multi", sec, rt, nil); st != http.StatusBadRequest {
		t.Errorf("refresh of a disabled admin = %d %v", st, body)
	}
	if _, refused := users.PermitScopes(&users.User{Disabled: true, Roles: []string{authority.AdminScope}}, []string{authority.AdminScope}); refused == "" {
		t.Error("PermitScopes gave a disabled user a privileged scope")
	}
}
