package authority_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// badScopeSeparators are the white space that is not the one SP RFC 6749
// §3.3 allows between scope tokens.
var badScopeSeparators = map[string]string{
	"TAB": "\t", "LF": "\n", "CR": "\r", "VT": "\v", "FF": "\f", "NBSP": "\u00a0", "EM SPACE": "\u2003", "NEL": "\u0085",
	"two spaces": "  ",
}

// TestScope_Separators: a scope whose tokens are separated by anything
// but one space, or that holds a character outside scope-token, is
// invalid_scope at every grant of the token endpoint, not a list of the
// tokens in between.
func TestScope_Separators(t *testing.T) {
	e := newEnv(t, envOptions{})
	ccSecret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read", "write"}, Audiences: []string{testAud}})
	sec := e.userClient("app", nil)
	e.createUser("alice")
	_, rt := e.login("app", sec, "alice", url.Values{"scope": {"read write"}})

	grants := map[string]func(scope string) (int, map[string]any){
		"client_credentials": func(scope string) (int, map[string]any) {
			s, _, b := e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, "svc", ccSecret)
			return s, b
		},
		"password": func(scope string) (int, map[string]any) {
			s, _, b := e.post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}, "scope": {scope}}, "app", sec)
			return s, b
		},
		"refresh_token": func(scope string) (int, map[string]any) {
			return e.refresh("app", sec, rt, url.Values{"scope": {scope}})
		},
	}
	bad := map[string]string{"leading space": " read", "trailing space": "read ", "double quote": `read "write"`, "backslash": `read\write`, "non-ASCII": "r\u00e9ad"}
	for name, sep := range badScopeSeparators {
		bad[name] = "read" + sep + "write"
	}
	for grant, try := range grants {
		for name, scope := range bad {
			if s, b := try(scope); s != http.StatusBadRequest || b["error"] != "invalid_scope" {
				t.Errorf("%s with scope %s (%q) = %d %v, want 400 invalid_scope", grant, name, scope, s, b)
			}
		}
		// One space still works, and a refused request did not spend the
		// refresh token.
		s, b := try("read write")
		if s != http.StatusOK || b["scope"] != "read write" {
			t.Errorf("%s with scope %q = %d %v, want 200", grant, "read write", s, b)
		}
		if grant == "refresh_token" {
			rt, _ = b["refresh_token"].(string)
		}
	}
}
