package authority_test

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/totp"
)

// TestSecondFactor_PasswordGrant: the password grant proves the password
// only, so by default it does not give the admin scope (refused when
// named, dropped from the client's defaults) even to a user holding the
// role, and gives nothing to a user who set up a second factor.
func TestSecondFactor_PasswordGrant(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.opsClient()
	carol := e.createUser("carol")
	e.setRoles(carol, []string{authority.AdminScope})
	named := url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {testPassword},
		"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}}
	if st, _, body := e.post("/oauth2/token", named, "ops", sec); st != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("admin scope named in a password grant = %d %v, want invalid_scope", st, body)
	}
	at, _ := e.login("ops", sec, "carol", nil)
	if sc := decodePayload(t, at)["scope"]; sc != "read" {
		t.Fatalf("admin scope from the defaults of a password grant: scope %v, want read", sc)
	}
	if st, _, _ := e.admin(http.MethodGet, "/admin/users", at, nil); st != http.StatusForbidden {
		t.Fatalf("password-only token at the admin API = %d, want 403", st)
	}

	f := mfa.New(e.store, bytes.Repeat([]byte{1}, 32), e.clock.Now)
	secret, err := f.BeginTOTP(t.Context(), carol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ConfirmTOTP(t.Context(), carol, totp.Code(secret, totp.Step(e.clock.Now()))); err != nil {
		t.Fatal(err)
	}
	plain := url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {testPassword}, "scope": {"read"}}
	if st, _, body := e.post("/oauth2/token", plain, "ops", sec); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("password grant for a user with a second factor = %d %v, want invalid_grant", st, body)
	}
}
