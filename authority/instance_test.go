package authority_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
)

// cookieLogin logs username in through a cookie client and returns the
// refresh token from the cookie.
func (e *env) cookieLogin(id, secret, username string) string {
	e.t.Helper()
	status, h, body := e.post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {username}, "password": {testPassword}}, id, secret)
	if status != http.StatusOK {
		e.t.Fatalf("cookie login = %d %v", status, body)
	}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "signet_refresh_token" {
			return c.Value
		}
	}
	e.t.Fatal("no refresh token cookie")
	return ""
}

// cookieRefresh runs the refresh grant with the token in the cookie.
func (e *env) cookieRefresh(id, secret, rt string) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	req.AddCookie(&http.Cookie{Name: "signet_refresh_token", Value: rt})
	status, _, body := e.do(req)
	return status, body
}

// TestClientInstance_DeletedClientStaysDead: deleting a client and
// creating another with the same id gives the new one nothing of the old
// one's: every record type of the deleted client (access token, refresh
// token and its family, cookie session) is refused by every endpoint that
// honours it, while updates and secret rotations of a living client keep
// its tokens working.
func TestClientInstance_DeletedClientStaysDead(t *testing.T) {
	e := newEnv(t, envOptions{})
	opsSpec := clients.Client{ID: "ops", Scopes: []string{authority.AdminScope}, Audiences: []string{authority.AdminAudience, testAud}}
	appSpec := clients.Client{ID: "app", GrantTypes: []string{"password", "refresh_token"}, Scopes: []string{"read"}, Audiences: []string{testAud}}
	webSpec := appSpec
	webSpec.ID, webSpec.RefreshTokenCookie = "web", true
	opsSec, appSec, webSec := e.createClient(opsSpec), e.createClient(appSpec), e.createClient(webSpec)
	e.createUser("alice")
	admin := e.adminToken()

	opsTok := e.token("ops", opsSec, url.Values{"scope": {authority.AdminScope}})
	opsAPI := e.token("ops", opsSec, url.Values{"audience": {testAud}})
	appAT, appRT := e.login("app", appSec, "alice", nil)
	webRT := e.cookieLogin("web", webSec, "alice")

	// Updating a client and rotating its secret keep it the same client.
	if s, _, b := e.admin(http.MethodPatch, "/admin/clients/ops", admin, map[string]any{"access_token_ttl": "10m"}); s != http.StatusOK {
		t.Fatalf("patch ops = %d %v", s, b)
	}
	_, appSec, err := e.srv.Clients().RotateSecret(t.Context(), "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", opsTok, nil); s != http.StatusOK {
		t.Fatalf("ops token after patch = %d %v", s, b)
	}
	s, b := e.refresh("app", appSec, appRT, nil)
	if s != http.StatusOK {
		t.Fatalf("refresh after secret rotation = %d %v", s, b)
	}
	appRT = b["refresh_token"].(string)
	for _, tok := range []string{opsTok, opsAPI, appAT, appRT, webRT} {
		if !active(e.introspect(tok)) {
			t.Fatal("a token is inactive before its client is deleted")
		}
	}

	for _, id := range []string{"ops", "app", "web"} {
		if s, _, b := e.admin(http.MethodDelete, "/admin/clients/"+id, admin, nil); s != http.StatusNoContent {
			t.Fatalf("delete %s = %d %v", id, s, b)
		}
	}
	// Deleted and not yet replaced: nothing of theirs is active.
	for _, tok := range []string{opsTok, opsAPI, appAT, appRT, webRT} {
		if in := e.introspect(tok); active(in) {
			t.Errorf("token of a deleted client: introspect = %v", in)
		}
	}
	opsSec, appSec, webSec = e.createClient(opsSpec), e.createClient(appSpec), e.createClient(webSpec)

	e.refusedEverywhere(t, "access token of the deleted ops", opsTok)
	for name, tok := range map[string]string{"ops admin token": opsTok, "ops api token": opsAPI, "app access token": appAT,
		"app refresh token": appRT, "web cookie session": webRT} {
		if in := e.introspect(tok); active(in) {
			t.Errorf("%s of the deleted client: introspect = %v, want inactive", name, in)
		}
	}
	if s, b := e.refresh("app", appSec, appRT, nil); s != http.StatusBadRequest || b["error"] != "invalid_grant" {
		t.Errorf("deleted app's refresh token at the new app = %d %v, want 400 invalid_grant", s, b)
	}
	if s, b := e.cookieRefresh("web", webSec, webRT); s != http.StatusBadRequest || b["error"] != "invalid_grant" {
		t.Errorf("deleted web's cookie session at the new web = %d %v, want 400 invalid_grant", s, b)
	}
	for _, c := range []struct{ id, secret, tok, what string }{
		{"ops", opsSec, opsTok, "admin access token"}, {"ops", opsSec, opsAPI, "access token"},
		{"app", appSec, appAT, "user access token"}, {"app", appSec, appRT, "refresh token"}, {"web", webSec, webRT, "cookie refresh token"},
	} {
		if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {c.tok}}, c.id, c.secret); s != http.StatusBadRequest || b["error"] != "unauthorized_client" {
			t.Errorf("new %s revokes the deleted one's %s = %d %v, want 400 unauthorized_client", c.id, c.what, s, b)
		}
	}

	// The new clients work.
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", e.token("ops", opsSec, url.Values{"scope": {authority.AdminScope}}), nil); s != http.StatusOK {
		t.Errorf("new ops token = %d %v", s, b)
	}
	_, rt := e.login("app", appSec, "alice", nil)
	if s, b := e.refresh("app", appSec, rt, nil); s != http.StatusOK {
		t.Errorf("new app refresh = %d %v", s, b)
	}
}

// TestClientInstance_Legacy: a client stored before instances existed
// keeps working (its tokens carry no instance), and deleting and
// recreating it still kills everything it had issued.
func TestClientInstance_Legacy(t *testing.T) {
	e := newEnv(t, envOptions{})
	spec := clients.Client{ID: "old", GrantTypes: []string{"password", "refresh_token", "client_credentials"},
		Scopes: []string{authority.AdminScope, "read"}, Audiences: []string{authority.AdminAudience, testAud}}
	sec := e.createClient(spec)
	err := e.store.Update(t.Context(), func(tx storage.Tx) error {
		b, err := tx.Get("clients", "old")
		if err != nil {
			return err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if _, ok := m["instance"]; !ok {
			t.Errorf("stored client has no instance: %s", b)
		}
		delete(m, "instance")
		b, _ = json.Marshal(m)
		return tx.Put("clients", "old", b)
	})
	if err != nil {
		t.Fatal(err)
	}
	// An empty update reloads the cache from the store at once.
	if _, err := e.srv.Clients().Update(t.Context(), "old", clients.Patch{}); err != nil {
		t.Fatal(err)
	}
	e.createUser("alice")
	tok := e.token("old", sec, url.Values{"scope": {authority.AdminScope}})
	if _, ok := decodePayload(t, tok)["client_instance"]; ok {
		t.Fatal("a legacy client's token has a client_instance claim")
	}
	_, rt := e.login("old", sec, "alice", nil)
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", tok, nil); s != http.StatusOK {
		t.Fatalf("legacy client token = %d %v", s, b)
	}
	s, b := e.refresh("old", sec, rt, nil)
	if s != http.StatusOK {
		t.Fatalf("legacy client refresh = %d %v", s, b)
	}
	rt = b["refresh_token"].(string)

	if err := e.srv.Clients().Delete(t.Context(), "old"); err != nil {
		t.Fatal(err)
	}
	sec = e.createClient(spec)
	e.refusedEverywhere(t, "legacy client's token after recreate", tok)
	if s, b := e.refresh("old", sec, rt, nil); s != http.StatusBadRequest {
		t.Errorf("legacy client's refresh token after recreate = %d %v, want 400", s, b)
	}
	if active(e.introspect(tok)) || active(e.introspect(rt)) {
		t.Error("legacy client's tokens active after recreate")
	}
}
