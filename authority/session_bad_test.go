package authority_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/users"
)

// TestSessions_BadInput: refusals of the password and refresh grants, the
// revocation and introspection endpoints and the feed, each with its
// RFC 6749/7009/7662 answer; never a 500, always JSON.
func TestSessions_BadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	secA := e.userClient("a", nil)
	secB := e.userClient("b", nil)
	secIdle := e.userClient("idle", func(c *clients.Client) {
		c.RefreshIdleTTL = clients.Duration(time.Hour)
		c.RefreshAbsoluteTTL = clients.Duration(2 * time.Hour)
	})
	secCC := e.createClient(clients.Client{ID: "cc", Scopes: []string{"read"}, Audiences: []string{testAud}})
	secPW := e.userClient("pwonly", func(c *clients.Client) { c.GrantTypes = []string{"password"} })
	rsSec := e.rsSecret()
	e.createUser("alice")
	disabled := e.createUser("dora")
	if _, _, err := e.srv.Users().Update(t.Context(), disabled, users.Patch{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	_, rtA := e.login("a", secA, "alice", nil)
	atCC := e.token("cc", secCC, nil)
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	login := func(user, pw string) url.Values {
		return form("grant_type", "password", "username", user, "password", pw)
	}
	refresh := func(rt string, kv ...string) url.Values {
		return form(append([]string{"grant_type", "refresh_token", "refresh_token", rt}, kv...)...)
	}
	unknownRT := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	noneJWT := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+e.issuer+`","sub":"x","jti":"j","exp":9999999999}`)) + "."

	type req struct {
		method, path, ctype string
		form                url.Values
		id, secret          string
	}
	post := func(path string, f url.Values, id, secret string) func() req {
		return func() req { return req{http.MethodPost, path, "application/x-www-form-urlencoded", f, id, secret} }
	}
	tests := []struct {
		name   string
		req    func() req
		status int
		code   string
		// active, for introspection rows: the body must be exactly {"active":false}
		inactive bool
	}{
		// password grant
		{"password: unknown user", post("/oauth2/token", login("nobody", testPassword), "a", secA), 400, "invalid_grant", false},
		{"password: wrong password", post("/oauth2/token", login("alice", "not the password"), "a", secA), 400, "invalid_grant", false},
		{"password: disabled user", post("/oauth2/token", login("dora", testPassword), "a", secA), 400, "invalid_grant", false},
		{"password: missing password", post("/oauth2/token", form("grant_type", "password", "username", "alice"), "a", secA), 400, "invalid_request", false},
		{"password: missing username", post("/oauth2/token", form("grant_type", "password", "password", "x"), "a", secA), 400, "invalid_request", false},
		{"password: client without the grant", post("/oauth2/token", login("alice", testPassword), "cc", secCC), 400, "unauthorized_client", false},
		{"password: scope not allowed", post("/oauth2/token", form("grant_type", "password", "username", "alice", "password", testPassword, "scope", "admin"), "a", secA), 400, "invalid_scope", false},
		{"password: audience not allowed", post("/oauth2/token", form("grant_type", "password", "username", "alice", "password", testPassword, "audience", "https://evil.example"), "a", secA), 400, "invalid_target", false},
		{"password: password repeated", post("/oauth2/token", form("grant_type", "password", "username", "alice", "password", "a", "password", "b"), "a", secA), 400, "invalid_request", false},
		{"password: wrong client secret", post("/oauth2/token", login("alice", testPassword), "a", "wrong"), 401, "invalid_client", false},
		// refresh grant
		{"refresh: another client's token", post("/oauth2/token", refresh(rtA), "b", secB), 400, "invalid_grant", false},
		{"refresh: widened scope", post("/oauth2/token", refresh(rtA, "scope", "read write"), "a", secA), 400, "invalid_scope", false},
		{"refresh: widened audience", post("/oauth2/token", refresh(rtA, "audience", "https://evil.example"), "a", secA), 400, "invalid_target", false},
		{"refresh: malformed scope", post("/oauth2/token", refresh(rtA, "scope", "re\"ad"), "a", secA), 400, "invalid_scope", false},
		{"refresh: malformed token", post("/oauth2/token", refresh("abc"), "a", secA), 400, "invalid_grant", false},
		{"refresh: token with bad characters", post("/oauth2/token", refresh(strings.Repeat("!", 43)), "a", secA), 400, "invalid_grant", false},
		{"refresh: unknown token", post("/oauth2/token", refresh(unknownRT), "a", secA), 400, "invalid_grant", false},
		{"refresh: access token as refresh token", post("/oauth2/token", refresh(atCC), "a", secA), 400, "invalid_grant", false},
		{"refresh: missing token", post("/oauth2/token", form("grant_type", "refresh_token"), "a", secA), 400, "invalid_request", false},
		{"refresh: token repeated", post("/oauth2/token", form("grant_type", "refresh_token", "refresh_token", rtA, "refresh_token", rtA), "a", secA), 400, "invalid_request", false},
		{"refresh: client without the grant", post("/oauth2/token", refresh(rtA), "pwonly", secPW), 400, "unauthorized_client", false},
		{"refresh: idle-expired family", func() req {
			_, rt := e.login("idle", secIdle, "alice", nil)
			e.clock.Add(time.Hour + time.Second)
			return post("/oauth2/token", refresh(rt), "idle", secIdle)()
		}, 400, "invalid_grant", false},
		{"refresh: absolute lifetime over", func() req {
			_, rt := e.login("idle", secIdle, "alice", nil)
			for range 2 { // used every 50 minutes: never idle
				e.clock.Add(50 * time.Minute)
				s, b := e.refresh("idle", secIdle, rt, nil)
				if s != http.StatusOK {
					return req{http.MethodGet, "/oauth2/token", "", nil, "", ""} // fails the row: 405
				}
				rt = b["refresh_token"].(string)
			}
			e.clock.Add(50 * time.Minute) // 2h30 after the login
			return post("/oauth2/token", refresh(rt), "idle", secIdle)()
		}, 400, "invalid_grant", false},
		// revocation
		{"revoke: no client authentication", post("/oauth2/revoke", form("token", rtA), "", ""), 401, "invalid_client", false},
		{"revoke: unknown token_type_hint", post("/oauth2/revoke", form("token", rtA, "token_type_hint", "id_token"), "a", secA), 400, "unsupported_token_type", false},
		{"revoke: missing token", post("/oauth2/revoke", form("token_type_hint", "refresh_token"), "a", secA), 400, "invalid_request", false},
		{"revoke: token repeated", post("/oauth2/revoke", form("token", rtA, "token", rtA), "a", secA), 400, "invalid_request", false},
		{"revoke: another client's access token", func() req {
			return post("/oauth2/revoke", form("token", e.token("cc", secCC, nil)), "a", secA)()
		}, 400, "unauthorized_client", false},
		{"revoke: GET", func() req { return req{http.MethodGet, "/oauth2/revoke", "", nil, "a", secA} }, 405, "invalid_request", false},
		{"revoke: JSON body", func() req {
			return req{http.MethodPost, "/oauth2/revoke", "application/json", form("token", rtA), "a", secA}
		}, 400, "invalid_request", false},
		{"revoke: grant parameters", post("/oauth2/revoke", form("token", rtA, "grant_type", "password"), "a", secA), 400, "invalid_request", false},
		// introspection
		{"introspect: client not allowed", post("/oauth2/introspect", form("token", rtA), "a", secA), 403, "unauthorized_client", false},
		{"introspect: bad secret", post("/oauth2/introspect", form("token", rtA), "rs", "wrong"), 401, "invalid_client", false},
		{"introspect: unknown token_type_hint", post("/oauth2/introspect", form("token", rtA, "token_type_hint", "saml"), "rs", rsSec), 400, "unsupported_token_type", false},
		{"introspect: missing token", post("/oauth2/introspect", form(), "rs", rsSec), 400, "invalid_request", false},
		{"introspect: malformed token", post("/oauth2/introspect", form("token", "not.a.token"), "rs", rsSec), 200, "", true},
		{"introspect: alg none", post("/oauth2/introspect", form("token", noneJWT), "rs", rsSec), 200, "", true},
		{"introspect: tampered access token", post("/oauth2/introspect", form("token", atCC[:len(atCC)-4]+"AAAA"), "rs", rsSec), 200, "", true},
		{"introspect: unknown refresh token", post("/oauth2/introspect", form("token", unknownRT), "rs", rsSec), 200, "", true},
		{"introspect: expired access token", func() req {
			at := e.token("cc", secCC, nil)
			e.clock.Add(16 * time.Minute)
			return post("/oauth2/introspect", form("token", at), "rs", rsSec)()
		}, 200, "", true},
		// feed
		{"feed: POST", func() req {
			return req{http.MethodPost, "/oauth2/revocations", "application/x-www-form-urlencoded", nil, "", ""}
		}, 405, "method_not_allowed", false},
	}
	if len(tests) < 25 {
		t.Fatalf("%d rows", len(tests))
	}
	bodies := map[string]map[string]any{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req()
			var body *strings.Reader
			if r.form != nil {
				body = strings.NewReader(r.form.Encode())
			} else {
				body = strings.NewReader("")
			}
			hr, err := http.NewRequest(r.method, e.issuer+r.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if r.ctype != "" {
				hr.Header.Set("Content-Type", r.ctype)
			}
			if r.id != "" {
				hr.SetBasicAuth(r.id, r.secret)
			}
			status, h, b := e.do(hr)
			if status != tc.status || (tc.code != "" && b["error"] != tc.code) {
				t.Errorf("%s %s = %d %v, want %d %s", r.method, r.path, status, b, tc.status, tc.code)
			}
			if tc.inactive && !reflect.DeepEqual(b, map[string]any{"active": false}) {
				t.Errorf("introspection = %v, want exactly {active: false}", b)
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type = %q, want JSON", h.Get("Content-Type"))
			}
			if r.path != "/oauth2/revocations" && h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", h.Get("Cache-Control"))
			}
			bodies[tc.name] = b
		})
	}
	// No user enumeration: unknown user, wrong password and disabled user
	// get the same answer.
	same := []string{"password: unknown user", "password: wrong password", "password: disabled user"}
	for _, n := range same[1:] {
		if !reflect.DeepEqual(bodies[n], bodies[same[0]]) {
			t.Errorf("%s answered %v, %s answered %v: want the same", n, bodies[n], same[0], bodies[same[0]])
		}
	}
	// The refusals above did not hurt alice's session with client a (no
	// revocation on another client's attempt, on a widened scope, ...).
	e.clock.Add(-3 * time.Hour) // back within the lifetime of rtA
	if s, b := e.refresh("a", secA, rtA, nil); s != http.StatusOK {
		t.Errorf("alice's session after the refusals: refresh = %d %v", s, b)
	}
}

func ptr[T any](v T) *T { return &v }
