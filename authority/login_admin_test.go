package authority_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAdmin_LoginFields: the admin API creates and patches a client's
// browser-login fields and a user's profile fields, validates redirect
// URIs, and lists and withdraws consents.
func TestAdmin_LoginFields(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.adminToken()
	st, _, body := e.admin(http.MethodPost, "/admin/clients", tok, map[string]any{
		"client_id": "spa", "public": true, "grant_types": []string{"authorization_code", "refresh_token"},
		"scopes": []string{"openid", "profile"}, "audiences": []string{"api"}, "redirect_uris": []string{"https://spa.example/cb"},
		"post_logout_redirect_uris": []string{"https://spa.example/"}, "first_party": true, "client_name": "SPA",
	})
	if st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("create public client = %d %v", st, body)
	}
	if body["client_secret"] != nil && body["client_secret"] != "" {
		t.Errorf("a public client got a secret: %v", body["client_secret"])
	}
	if m, _ := body["token_endpoint_auth_methods"].([]any); len(m) != 1 || m[0] != "none" {
		t.Errorf("auth methods = %v", body["token_endpoint_auth_methods"])
	}
	for _, bad := range []map[string]any{
		{"redirect_uris": []string{"http://spa.example/cb"}},
		{"redirect_uris": []string{"https://spa.example/cb#x"}},
		{"redirect_uris": []string{"com.example.app:/cb"}},
		{"application_type": "desktop"},
		{"require_pkce": false},
		{"token_endpoint_auth_methods": []string{"client_secret_basic"}},
	} {
		if st, _, body := e.admin(http.MethodPatch, "/admin/clients/spa", tok, bad); st != http.StatusBadRequest {
			t.Errorf("PATCH %v = %d %v", bad, st, body)
		}
	}
	st, _, body = e.admin(http.MethodPatch, "/admin/clients/spa", tok, map[string]any{"redirect_uris": []string{"https://spa.example/cb", "https://spa.example/cb2"}})
	if st != http.StatusOK || len(body["redirect_uris"].([]any)) != 2 {
		t.Fatalf("PATCH redirect_uris = %d %v", st, body)
	}
	// Public clients get tokens with client_id alone; a secret-less
	// confidential client does not.
	code, _, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "client_id": {"spa"}, "code": {strings.Repeat("a", 43)}, "code_verifier": {strings.Repeat("v", 43)}}, "", "")
	if code != http.StatusBadRequest {
		t.Errorf("public client with a bad code = %d, want 400 invalid_grant", code)
	}
	st, _, body = e.admin(http.MethodPost, "/admin/users", tok, map[string]any{"username": "alice", "password": "a long password", "name": "Alice", "email": "a@example.com", "email_verified": true})
	if st != http.StatusCreated && st != http.StatusOK || body["name"] != "Alice" || body["email_verified"] != true {
		t.Fatalf("create user = %d %v", st, body)
	}
	id := body["id"].(string)
	st, _, body = e.admin(http.MethodPatch, "/admin/users/"+id, tok, map[string]any{"name": "Alice L.", "email_verified": false})
	if st != http.StatusOK || body["name"] != "Alice L." || body["email_verified"] != nil {
		t.Fatalf("patch user = %d %v", st, body)
	}
	st, _, body = e.admin(http.MethodGet, "/admin/users/"+id+"/consents", tok, nil)
	if st != http.StatusOK || len(body["consents"].([]any)) != 0 {
		t.Fatalf("consents = %d %v", st, body)
	}
	st, _, body = e.admin(http.MethodDelete, "/admin/users/"+id+"/consents/spa", tok, nil)
	if st != http.StatusOK || body["withdrawn"] != false {
		t.Fatalf("withdraw = %d %v", st, body)
	}
	if st, _, _ := e.admin(http.MethodGet, "/admin/users/nobody/consents", tok, nil); st != http.StatusNotFound {
		t.Errorf("consents of an unknown user = %d", st)
	}
}
