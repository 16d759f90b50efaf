package authority_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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
	e := newEnv(t, envOptions{adminPasswordOnly: true}) // the default needs a second factor (factors_test.go)
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
	e := newEnv(t, envOptions{adminPasswordOnly: true}) // the roles rule alone; the second factor's is in factors_test.go
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

// TestRefresh_RechecksEveryCopiedValue is issue 16 item 3 and its class:
// every value a refresh copies from its family (audiences, scopes,
// claims, the grant, the client instance and state, the user's state and
// roles) is checked against the client and the user as they are now.
// What the client lost is dropped; asked for by name, it is refused.
func TestRefresh_RechecksEveryCopiedValue(t *testing.T) {
	e := newEnv(t, envOptions{})
	const other = "https://other.example.com"
	ctx := t.Context()
	strs := func(v any) []string {
		switch v := v.(type) {
		case string:
			return []string{v}
		case []any:
			var out []string
			for _, x := range v {
				out = append(out, x.(string))
			}
			return out
		}
		return nil
	}
	patch := func(id string, p clients.Patch) {
		t.Helper()
		if _, err := e.srv.Clients().Update(ctx, id, p); err != nil {
			t.Fatal(err)
		}
	}
	userID := e.createUser("erin")
	rows := []struct {
		name    string
		change  func(id string)
		ask     url.Values
		status  int
		errCode string
		check   func(t *testing.T, claims map[string]any, body map[string]any)
	}{
		{"audience removed: dropped", func(id string) { patch(id, clients.Patch{Audiences: &[]string{testAud}}) }, nil, 200, "",
			func(t *testing.T, c, _ map[string]any) {
				if got := strs(c["aud"]); !slices.Equal(got, []string{testAud}) {
					t.Errorf("aud = %v, want only %s", got, testAud)
				}
			}},
		{"audience removed, asked for by name", func(id string) { patch(id, clients.Patch{Audiences: &[]string{testAud}}) }, url.Values{"resource": {other}}, 400, "invalid_target", nil},
		{"audience removed, asked for with audience=", func(id string) { patch(id, clients.Patch{Audiences: &[]string{testAud}}) }, url.Values{"audience": {other}}, 400, "invalid_target", nil},
		{"every granted audience removed", func(id string) {
			patch(id, clients.Patch{Audiences: &[]string{"https://third.example.com"}, DefaultAudience: ptr("https://third.example.com")})
		}, nil, 400, "invalid_target", nil},
		{"scope removed: dropped", func(id string) {
			patch(id, clients.Patch{Scopes: &[]string{"read", "email"}, DefaultScopes: &[]string{"read"}})
		}, nil, 200, "", func(t *testing.T, c, b map[string]any) {
			if c["scope"] != "read email" || b["scope"] != "read email" {
				t.Errorf("scope = %v / %v, want read email", c["scope"], b["scope"])
			}
		}},
		{"scope removed, asked for by name", func(id string) {
			patch(id, clients.Patch{Scopes: &[]string{"read", "email"}, DefaultScopes: &[]string{"read"}})
		}, url.Values{"scope": {"read write"}}, 400, "invalid_scope", nil},
		{"client extra claim changed", func(id string) {
			patch(id, clients.Patch{ExtraClaims: &map[string]json.RawMessage{"tenant": json.RawMessage(`"blue"`)}})
		}, nil, 200, "", func(t *testing.T, c, _ map[string]any) {
			if c["tenant"] != "blue" {
				t.Errorf("tenant = %v, want the client's new extra claim", c["tenant"])
			}
		}},
		{"user email and roles changed", func(string) {
			email, roles := "erin@new.example.com", []string{"auditor"}
			if _, _, err := e.srv.Users().Update(ctx, userID, users.Patch{Email: &email, Roles: &roles}); err != nil {
				t.Fatal(err)
			}
		}, nil, 200, "", func(t *testing.T, c, _ map[string]any) {
			if c["email"] != "erin@new.example.com" || !slices.Equal(strs(c["roles"]), []string{"auditor"}) {
				t.Errorf("email %v roles %v, want the user's as they are now", c["email"], c["roles"])
			}
		}},
		{"refresh grant withdrawn", func(id string) { patch(id, clients.Patch{GrantTypes: &[]string{"password"}}) }, nil, 400, "unauthorized_client", nil},
		{"client disabled", func(id string) { patch(id, clients.Patch{Disabled: ptr(true)}) }, nil, 401, "invalid_client", nil},
		{"client deleted and recreated", func(id string) {
			if err := e.srv.Clients().Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}, nil, 400, "invalid_grant", nil},
	}
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			id := fmt.Sprintf("r%d", i)
			mod := func(c *clients.Client) { c.Audiences = []string{testAud, other} }
			sec := e.userClient(id, mod)
			_, rt := e.login(id, sec, "erin", url.Values{"scope": {"read write email"}, "resource": {testAud, other}})
			row.change(id)
			if _, err := e.srv.Clients().Get(ctx, id); err != nil { // deleted: the same id again
				sec = e.userClient(id, mod)
			}
			st, body := e.refresh(id, sec, rt, row.ask)
			if st != row.status || (row.errCode != "" && body["error"] != row.errCode) {
				t.Fatalf("refresh = %d %v, want %d %s", st, body, row.status, row.errCode)
			}
			if row.check != nil {
				row.check(t, decodePayload(t, body["access_token"].(string)), body)
			}
		})
	}
	// The user's state: disabled ends the family.
	sec := e.userClient("u1", nil)
	_, rt := e.login("u1", sec, "erin", nil)
	if _, _, err := e.srv.Users().Update(ctx, userID, users.Patch{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if st, body := e.refresh("u1", sec, rt, nil); st != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh of a disabled user = %d %v, want invalid_grant", st, body)
	}
}
