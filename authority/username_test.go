package authority_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestUsernames_LookAlikes (issue 16, item 9): through the admin API, a
// username with an invisible character is refused (400), a full-width or
// look-alike one beside "alice" is a conflict (409), at creation and at
// rename; the password grant finds alice under every form of her name the
// profile maps to her, and no one under a look-alike.
func TestUsernames_LookAlikes(t *testing.T) {
	e := newEnv(t, envOptions{})
	adm := e.adminToken()
	s, _, u := e.admin(http.MethodPost, "/admin/users", adm, map[string]any{"username": "alice", "password": testPassword})
	if s != http.StatusCreated {
		t.Fatalf("create alice = %d %v", s, u)
	}
	aliceID := u["id"].(string)
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"alice\u200b", http.StatusBadRequest},
		{"\u2066alice", http.StatusBadRequest},
		{"ａlice", http.StatusConflict},
		{"alıce", http.StatusConflict},
		{"аlice", http.StatusConflict},
		{"aIice", http.StatusConflict},
	} {
		if s, _, b := e.admin(http.MethodPost, "/admin/users", adm, map[string]any{"username": tc.name, "password": testPassword}); s != tc.status {
			t.Errorf("create %q = %d %v, want %d", tc.name, s, b, tc.status)
		}
	}
	s, _, u = e.admin(http.MethodPost, "/admin/users", adm, map[string]any{"username": "mallory", "password": testPassword})
	if s != http.StatusCreated {
		t.Fatalf("create mallory = %d %v", s, u)
	}
	if s, _, b := e.admin(http.MethodPatch, "/admin/users/"+u["id"].(string), adm, map[string]any{"username": "alicе"}); s != http.StatusConflict {
		t.Errorf("rename mallory to alicе (Cyrillic e) = %d %v, want 409", s, b)
	}

	id := "app"
	secret := e.userClient(id, nil)
	for _, name := range []string{"alice", "ALICE", "ＡＬＩＣＥ"} {
		access, _ := e.login(id, secret, name, nil)
		if sub := decodePayload(t, access)["sub"]; sub != aliceID {
			t.Errorf("password grant as %q: sub %v, want alice %s", name, sub, aliceID)
		}
	}
	for _, name := range []string{"alice\u200b", "alıce", "аlice"} {
		form := url.Values{"grant_type": {"password"}, "username": {name}, "password": {testPassword}}
		if s, _, b := e.post("/oauth2/token", form, id, secret); s != http.StatusBadRequest || b["error"] != "invalid_grant" {
			t.Errorf("password grant as %q = %d %v, want 400 invalid_grant", name, s, b)
		}
	}
}
