package authority_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/signet-auth/signet/mfa"
)

// TestAdmin_FactorsShowRequirement: GET /admin/users/{id}/factors says
// whether a second factor is required of the user and by when, and
// reading it does not start the user's grace period: under
// required_for: all, the period starts at the user's first sign-in (here
// the password grant), not when an operator looks.
func TestAdmin_FactorsShowRequirement(t *testing.T) {
	e := newEnv(t, envOptions{factorPolicy: mfa.Policy{RequiredFor: mfa.RequiredForAll, Grace: 48 * time.Hour}})
	sec := e.userClient("app", nil)
	id := e.createUser("alice")
	get := func() map[string]any {
		t.Helper()
		status, _, body := e.admin(http.MethodGet, "/admin/users/"+id+"/factors", e.adminToken(), nil)
		if status != http.StatusOK {
			t.Fatalf("GET factors: %d %v", status, body)
		}
		return body
	}
	if b := get(); b["required"] != true || b["required_by"] != nil || b["totp"] != false {
		t.Fatalf("before any sign-in: %v, want required, no date, no app", b)
	}
	e.clock.Add(24 * time.Hour)
	if b := get(); b["required_by"] != nil {
		t.Fatalf("a second look started the grace period: %v", b)
	}
	signedIn := e.clock.Now()
	status, _, body := e.tokenRequest(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}, "scope": {"read"}}, "app", sec)
	if status != http.StatusOK {
		t.Fatalf("password grant in the grace period: %d %v", status, body)
	}
	want := signedIn.Add(48 * time.Hour).UTC().Format(time.RFC3339)
	if b := get(); b["required_by"] != want {
		t.Fatalf("after the first sign-in: %v, want required_by %s", b, want)
	}
}
