package authority_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/users"
)

// reservedClaimNames is the spec of issue 9 item 3: registered JWT claims
// and the OAuth/OIDC claims Signet sets or reads, plus the client
// instance id and the members of an introspection answer. No client extra
// claim and no user profile claim may take one of these names in any case.
var reservedClaimNames = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	"client_id", "scope", "cnf", "act", "may_act",
	"azp", "nonce", "auth_time", "at_hash", "c_hash", "acr", "amr", "sid", "typ",
	"client_instance", "active", "token_type", "username",
}

// userRecordClaimNames are set from the user record's own fields: a user
// profile claim may not take them in any case, and a client extra claim
// may use them only exactly (a client-credentials token may carry roles),
// never in another case.
var userRecordClaimNames = []string{"email", "email_verified", "roles", "preferred_username"}

// caseVariants gives name in lower, UPPER, Title and mIxEd case.
func caseVariants(name string) []string {
	title := []rune(name)
	title[0] = unicode.ToUpper(title[0])
	mixed := []rune(name)
	for i := range mixed {
		if i%2 == 1 {
			mixed[i] = unicode.ToUpper(mixed[i])
		}
	}
	return []string{strings.ToLower(name), strings.ToUpper(name), string(title), string(mixed)}
}

func TestCaseVariants(t *testing.T) {
	got := caseVariants("client_id")
	want := []string{"client_id", "CLIENT_ID", "Client_id", "cLiEnT_Id"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("caseVariants = %v, want %v", got, want)
	}
}

// refusedNaming checks a 400 invalid_request whose description names claim.
func refusedNaming(t *testing.T, what string, status int, body map[string]any, claim string) {
	t.Helper()
	d, _ := body["error_description"].(string)
	if status != http.StatusBadRequest || body["error"] != "invalid_request" || !strings.Contains(d, "'"+claim+"'") {
		t.Errorf("%s: %d %v, want 400 invalid_request naming '%s'", what, status, body, claim)
	}
}

// TestReservedClaimNames_AdminAPI: every reserved name in four cases is
// refused as a client extra claim and as a user profile claim, at creation
// and at update; the error names the claim, and nothing is stored.
func TestReservedClaimNames_AdminAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	adm := e.adminToken()
	if s, _, b := e.admin(http.MethodPost, "/admin/clients", adm, map[string]any{"client_id": "base", "audiences": []string{"api"}}); s != http.StatusCreated {
		t.Fatalf("create base client = %d %v", s, b)
	}
	s, _, u := e.admin(http.MethodPost, "/admin/users", adm, map[string]any{"username": "base", "password": testPassword})
	if s != http.StatusCreated {
		t.Fatalf("create base user = %d %v", s, u)
	}
	userID := u["id"].(string)

	check := func(name string, client, user bool) {
		t.Helper()
		claims := map[string]any{name: "forged"}
		s, _, b := e.admin(http.MethodPost, "/admin/clients", adm, map[string]any{"client_id": "x", "audiences": []string{"api"}, "extra_claims": claims})
		if client {
			refusedNaming(t, "create client with extra claim "+name, s, b, name)
		} else if s != http.StatusCreated {
			t.Errorf("create client with extra claim %s = %d %v, want 201", name, s, b)
		} else {
			e.admin(http.MethodDelete, "/admin/clients/x", adm, nil)
		}
		s, _, b = e.admin(http.MethodPatch, "/admin/clients/base", adm, map[string]any{"extra_claims": claims})
		if client {
			refusedNaming(t, "update client with extra claim "+name, s, b, name)
		} else if s != http.StatusOK {
			t.Errorf("update client with extra claim %s = %d %v, want 200", name, s, b)
		}
		s, _, b = e.admin(http.MethodPost, "/admin/users", adm, map[string]any{"username": "x", "password": testPassword, "claims": claims})
		if user {
			refusedNaming(t, "create user with claim "+name, s, b, name)
		} else if s != http.StatusCreated {
			t.Errorf("create user with claim %s = %d %v, want 201", name, s, b)
		} else {
			e.admin(http.MethodDelete, "/admin/users/"+b["id"].(string), adm, nil)
		}
		s, _, b = e.admin(http.MethodPatch, "/admin/users/"+userID, adm, map[string]any{"claims": claims})
		if user {
			refusedNaming(t, "update user with claim "+name, s, b, name)
		} else if s != http.StatusOK {
			t.Errorf("update user with claim %s = %d %v, want 200", name, s, b)
		}
	}
	for _, name := range reservedClaimNames {
		for _, v := range caseVariants(name) {
			check(v, true, true)
		}
	}
	for _, name := range userRecordClaimNames {
		for i, v := range caseVariants(name) {
			check(v, i != 0, true)
		}
	}
	// Ordinary names stay allowed, whatever their case.
	for _, v := range []string{"team", "Tenant", "department", "groups"} {
		check(v, false, false)
	}

	// Nothing reserved got stored: the base client's token and the base
	// user's token carry the claims Signet wrote and nothing else forged.
	s, _, b := e.admin(http.MethodGet, "/admin/clients/base", adm, nil)
	if s != http.StatusOK {
		t.Fatalf("get base = %d %v", s, b)
	}
	for k := range b["extra_claims"].(map[string]any) {
		if k != "groups" {
			t.Errorf("base client kept extra claim %s after refusals", k)
		}
	}
}

// TestReservedClaimNames_GoAPI: the refusal is in the registries the
// offline CLI uses, not only in the admin API.
func TestReservedClaimNames_GoAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	for _, name := range reservedClaimNames {
		for _, v := range caseVariants(name) {
			_, _, err := e.srv.Clients().Create(ctx, clients.Client{ID: "x", Audiences: []string{"api"}, ExtraClaims: map[string]json.RawMessage{v: json.RawMessage(`"x"`)}})
			if err == nil || !strings.Contains(err.Error(), "'"+v+"'") {
				t.Errorf("Clients.Create with %s = %v, want an error naming it", v, err)
			}
			_, err = e.srv.Users().Create(ctx, users.NewUser{Username: "x", Password: testPassword, Claims: map[string]json.RawMessage{v: json.RawMessage(`"x"`)}})
			if err == nil || !strings.Contains(err.Error(), "'"+v+"'") {
				t.Errorf("Users.Create with %s = %v, want an error naming it", v, err)
			}
		}
	}
}
