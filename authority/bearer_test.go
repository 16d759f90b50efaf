package authority_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
)

// adminRoute is one route of the admin API, with a path that names
// nothing in particular: a refused token must be answered before the
// handler looks anything up.
type adminRoute struct{ method, path string }

var adminRoutes = []adminRoute{
	{http.MethodGet, "/admin/keys"},
	{http.MethodPost, "/admin/keys/rotate"},
	{http.MethodPost, "/admin/keys/no-such-kid/revoke"},
	{http.MethodGet, "/admin/clients"},
	{http.MethodPost, "/admin/clients"},
	{http.MethodGet, "/admin/clients/admin"},
	{http.MethodPatch, "/admin/clients/admin"},
	{http.MethodDelete, "/admin/clients/no-such-client"},
	{http.MethodPost, "/admin/clients/admin/secret"},
	{http.MethodGet, "/admin/audit"},
	{http.MethodGet, "/admin/users"},
	{http.MethodPost, "/admin/users"},
	{http.MethodGet, "/admin/users/no-such-user"},
	{http.MethodPatch, "/admin/users/no-such-user"},
	{http.MethodDelete, "/admin/users/no-such-user"},
	{http.MethodPost, "/admin/users/no-such-user/password"},
	{http.MethodPost, "/admin/users/no-such-user/logout"},
}

// refusedEverywhere checks that every endpoint accepting a Signet bearer
// token answers 401 invalid_token to tok.
func (e *env) refusedEverywhere(t *testing.T, what, tok string) {
	t.Helper()
	for _, r := range adminRoutes {
		status, h, body := e.admin(r.method, r.path, tok, nil)
		if status != http.StatusUnauthorized || body["error"] != "invalid_token" || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %s %s = %d %v, want 401 invalid_token", what, r.method, r.path, status, body)
		}
	}
}

// TestBearer_RevokedAndCutOff: an admin token revoked at /oauth2/revoke,
// or issued before its subject's cutoff, is refused at once by every
// endpoint that accepts bearer tokens, for client tokens and user tokens.
func TestBearer_RevokedAndCutOff(t *testing.T) {
	e := newEnv(t, envOptions{adminPasswordOnly: true}) // admin tokens by the password grant
	e.clock.Add(300 * time.Millisecond)

	// A client_credentials admin token, revoked by its client.
	revoked := e.adminToken()
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", revoked, nil); s != http.StatusOK {
		t.Fatalf("fresh admin token = %d %v", s, b)
	}
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {revoked}}, e.adminID, e.adminSecret); s != http.StatusOK {
		t.Fatalf("revoke = %d %v", s, b)
	}
	e.refusedEverywhere(t, "revoked client token", revoked)

	// A client_credentials admin token issued before its subject's cutoff.
	cut := e.adminToken()
	if _, err := e.srv.Logout(t.Context(), e.adminID); err != nil {
		t.Fatal(err)
	}
	e.refusedEverywhere(t, "client token before cutoff", cut)
	e.clock.Add(time.Second)
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", e.adminToken(), nil); s != http.StatusOK {
		t.Fatalf("admin token after the cutoff = %d %v", s, b)
	}

	// A user's token with the admin scope (a password client may have it).
	sec := e.userClient("console", func(c *clients.Client) {
		c.Scopes = append(c.Scopes, authority.AdminScope)
		c.Audiences = append(c.Audiences, authority.AdminAudience)
	})
	alice := e.createUser("alice")
	e.setRoles(alice, []string{authority.AdminScope}) // issue 16: only an admin user gets the scope
	adminForm := url.Values{"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}}
	userRevoked, _ := e.login("console", sec, "alice", adminForm)
	userCut, _ := e.login("console", sec, "alice", adminForm)
	for _, tok := range []string{userRevoked, userCut} {
		if s, _, b := e.admin(http.MethodGet, "/admin/keys", tok, nil); s != http.StatusOK {
			t.Fatalf("user admin token = %d %v", s, b)
		}
	}
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {userRevoked}}, "console", sec); s != http.StatusOK {
		t.Fatalf("revoke = %d %v", s, b)
	}
	e.refusedEverywhere(t, "revoked user token", userRevoked)
	if s, _, b := e.admin(http.MethodPost, "/admin/users/"+alice+"/logout", e.adminToken(), nil); s != http.StatusOK {
		t.Fatalf("logout = %d %v", s, b)
	}
	e.refusedEverywhere(t, "user token before cutoff", userCut)
	// Logging in again right after the logout (same instant) works.
	again, _ := e.login("console", sec, "alice", adminForm)
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", again, nil); s != http.StatusOK {
		t.Errorf("user admin token issued after the logout = %d %v", s, b)
	}
}

// mintRaw signs payload (JSON text, taken as is: member order and
// duplicates are the test's) with key, as Signet's header would say.
func mintRaw(t *testing.T, key jwk.Key, payload string) string {
	t.Helper()
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, key.KeyID())
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	tok, err := jws.Sign([]byte(payload), jws.WithKey(key.Algorithm(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// TestClaims_ReadExactNames: claims whose names differ from Signet's only
// in case (as a client's extra claims or a user's profile claims put them
// after Signet's own) change nothing Signet reads back: introspection
// reports the real values, revocation denylists the real jti, and the
// admin API sees the real scope. A token naming one of Signet's claims
// twice is not Signet's and is refused.
func TestClaims_ReadExactNames(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.createClient(clients.Client{ID: "evil", Scopes: []string{"read"}, Audiences: []string{testAud, authority.AdminAudience}})
	key, err := e.keys.SigningKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().Unix()
	exp := now + 600
	inst := e.instanceClaim("evil", sec)["client_instance"]
	real := fmt.Sprintf(`"iss":%q,"sub":"evil","aud":%q,"exp":%d,"nbf":%d,"iat":%d,"jti":"real-jti","client_id":"evil","scope":"read","client_instance":%q`,
		e.issuer, testAud, exp, now, now, inst)
	fake := `"SCOPE":"signet:admin","Client_Id":"admin","JTI":"fake-jti","EXP":4102444800,"Sub":"admin","ISS":"https://evil.example","Aud":"x","Client_Instance":"x"`
	tok := mintRaw(t, key, "{"+real+","+fake+"}")

	in := e.introspect(tok)
	for k, want := range map[string]any{"active": true, "scope": "read", "client_id": "evil", "sub": "evil", "jti": "real-jti",
		"exp": float64(exp), "iss": e.issuer, "aud": testAud} {
		if in[k] != want {
			t.Errorf("introspect[%s] = %v, want %v", k, in[k], want)
		}
	}
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {tok}}, "evil", sec); s != http.StatusOK {
		t.Fatalf("revoke = %d %v", s, b)
	}
	_, _, feed := e.feed("")
	jtis, _ := feed["revoked_jtis"].(map[string]any)
	if jtis["real-jti"] != float64(exp) || jtis["fake-jti"] != nil {
		t.Errorf("feed jtis = %v, want real-jti → %d only", jtis, exp)
	}
	if active(e.introspect(tok)) {
		t.Error("token active after revocation")
	}

	// The admin API reads the real scope and client.
	adminReal := fmt.Sprintf(`"iss":%q,"sub":"evil","aud":%q,"exp":%d,"nbf":%d,"iat":%d,"jti":"admin-jti","client_id":"evil","scope":"read","client_instance":%q`,
		e.issuer, authority.AdminAudience, exp, now, now, inst)
	adminTok := mintRaw(t, key, "{"+adminReal+","+fake+"}")
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", adminTok, nil); s != http.StatusForbidden || b["error"] != "insufficient_scope" {
		t.Errorf("admin API with case-variant claims = %d %v, want 403 insufficient_scope", s, b)
	}

	// One of Signet's claims twice: refused, whichever copy a reader takes.
	for _, dup := range []string{`"scope":"signet:admin"`, `"client_id":"admin"`, `"jti":"other"`, `"exp":4102444800`, `"sub":"admin"`, `"iss":"https://evil.example"`, `"client_instance":"x"`} {
		tok := mintRaw(t, key, "{"+real+","+dup+"}")
		if in := e.introspect(tok); active(in) {
			t.Errorf("token with %s twice: introspect = %v, want inactive", dup, in)
		}
		atok := mintRaw(t, key, "{"+adminReal+","+dup+"}")
		if s, _, b := e.admin(http.MethodGet, "/admin/keys", atok, nil); s != http.StatusUnauthorized {
			t.Errorf("token with %s twice: admin API = %d %v, want 401", dup, s, b)
		}
	}
}

// b64url is the base64url alphabet in value order.
const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// otherSpelling returns part with its last character changed so that it
// decodes to the same bytes (an unused bit set), or false when the part's
// length leaves no unused bits.
func otherSpelling(t *testing.T, part string) (string, bool) {
	t.Helper()
	if n := len(part) % 4; n != 2 && n != 3 {
		return "", false
	}
	v := strings.IndexByte(b64url, part[len(part)-1])
	if v&1 != 0 {
		t.Fatalf("part %q is not canonical to begin with", part)
	}
	other := part[:len(part)-1] + string(b64url[v|1])
	a, errA := base64.RawURLEncoding.DecodeString(part)
	b, errB := base64.RawURLEncoding.DecodeString(other)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("%q and %q do not decode alike: %v %v", part, other, errA, errB)
	}
	return other, true
}

// mintPadded signs claims with key under Signet's header plus a padding
// header parameter, trying paddings until header, payload and signature
// all have a length with unused bits in their last character.
func mintPadded(t *testing.T, key jwk.Key, claims map[string]any) string {
	t.Helper()
	for hp := range 4 {
		for cp := range 4 {
			claims["pad"] = strings.Repeat("p", cp)
			payload, _ := json.Marshal(claims)
			hdr := jws.NewHeaders()
			_ = hdr.Set(jws.KeyIDKey, key.KeyID())
			_ = hdr.Set(jws.TypeKey, "at+jwt")
			_ = hdr.Set("pad", strings.Repeat("p", hp))
			tok, err := jws.Sign(payload, jws.WithKey(key.Algorithm(), key, jws.WithProtectedHeaders(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			ok := true
			for _, p := range strings.Split(string(tok), ".") {
				if n := len(p) % 4; n != 2 && n != 3 {
					ok = false
				}
			}
			if ok {
				return string(tok)
			}
		}
	}
	t.Fatal("no padding gives every part unused bits")
	return ""
}

// TestBearer_CanonicalBase64: a token has exactly one accepted spelling.
// Changing the unused bits of the last character of any part (header,
// payload, signature) leaves the bytes alike and the token refused: by
// the admin API, by introspection, and by revocation (which then revokes
// nothing); the canonical token keeps working.
func TestBearer_CanonicalBase64(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"RS256", "ES256", "EdDSA"}})
	rs := e.rsSecret()
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		key, err := e.keys.SigningKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now().Unix()
		claims := map[string]any{"iss": e.issuer, "sub": e.adminID, "aud": authority.AdminAudience, "exp": now + 600, "nbf": now, "iat": now,
			"jti": "jti-" + alg, "client_id": e.adminID, "scope": authority.AdminScope}
		for k, v := range e.instanceClaim(e.adminID, e.adminSecret) {
			claims[k] = v
		}
		tok := mintPadded(t, key, claims)
		parts := strings.Split(tok, ".")
		for i, name := range []string{"header", "payload", "signature"} {
			other, ok := otherSpelling(t, parts[i])
			if !ok {
				t.Fatalf("%s %s has no unused bits", alg, name)
			}
			bent := slices.Clone(parts)
			bent[i] = other
			bad := strings.Join(bent, ".")
			what := alg + " " + name
			if s, _, b := e.admin(http.MethodGet, "/admin/keys", bad, nil); s != http.StatusUnauthorized || b["error"] != "invalid_token" {
				t.Errorf("%s: admin API = %d %v, want 401 invalid_token", what, s, b)
			}
			if s, _, b := e.post("/oauth2/introspect", url.Values{"token": {bad}}, "rs", rs); s != http.StatusOK || active(b) {
				t.Errorf("%s: introspect = %d %v, want 200 inactive", what, s, b)
			}
			if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {bad}}, e.adminID, e.adminSecret); s != http.StatusOK {
				t.Errorf("%s: revoke = %d %v, want 200", what, s, b)
			}
		}
		// Nothing above revoked it, and the canonical spelling is accepted.
		if s, _, b := e.admin(http.MethodGet, "/admin/keys", tok, nil); s != http.StatusOK {
			t.Errorf("%s canonical: admin API = %d %v, want 200", alg, s, b)
		}
		if in := e.introspect(tok); !active(in) {
			t.Errorf("%s canonical: introspect = %v, want active", alg, in)
		}
	}
}

// instanceClaim returns the client-instance claim of id's tokens (none for
// a client without one), read from a token the client gets, so a test can
// mint tokens Signet would accept as that client's.
func (e *env) instanceClaim(id, secret string) map[string]any {
	e.t.Helper()
	out := map[string]any{}
	for k, v := range decodePayload(e.t, e.token(id, secret, nil)) {
		if k == "client_instance" {
			out[k] = v
		}
	}
	return out
}

// TestAuthorization_Repeated: a request with more than one Authorization
// header field is refused with 400 invalid_request by every endpoint that
// reads the field, whichever field is valid: a proxy that reads another
// of them than Signet would authenticate someone else.
func TestAuthorization_Repeated(t *testing.T) {
	e := newEnv(t, envOptions{})
	rs := e.rsSecret()
	tok := e.token("rs", rs, nil)
	admin := e.adminToken()
	good := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	pairs := map[string][2]string{
		"same field twice":   {good("rs", rs), good("rs", rs)},
		"valid then invalid": {good("rs", rs), good("rs", "wrong")},
		"invalid then valid": {good("rs", "wrong"), good("rs", rs)},
		"two clients":        {good("admin", e.adminSecret), good("rs", rs)},
	}
	forms := map[string]url.Values{
		"/oauth2/token":      {"grant_type": {"client_credentials"}},
		"/oauth2/revoke":     {"token": {tok}},
		"/oauth2/introspect": {"token": {tok}},
	}
	for path, form := range forms {
		for name, p := range pairs {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header["Authorization"] = []string{p[0], p[1]}
			if s, _, b := e.do(req); s != http.StatusBadRequest || b["error"] != "invalid_request" {
				t.Errorf("%s, %s: %d %v, want 400 invalid_request", path, name, s, b)
			}
		}
	}
	bearerPairs := map[string][2]string{
		"same token twice":   {"Bearer " + admin, "Bearer " + admin},
		"valid then invalid": {"Bearer " + admin, "Bearer x.y.z"},
		"invalid then valid": {"Bearer x.y.z", "Bearer " + admin},
		"bearer and basic":   {"Bearer " + admin, good("admin", e.adminSecret)},
	}
	for _, r := range adminRoutes {
		for name, p := range bearerPairs {
			req, _ := http.NewRequest(r.method, e.issuer+r.path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header["Authorization"] = []string{p[0], p[1]}
			if s, _, b := e.do(req); s != http.StatusBadRequest || b["error"] != "invalid_request" {
				t.Errorf("%s %s, %s: %d %v, want 400 invalid_request", r.method, r.path, name, s, b)
			}
		}
	}
	// One field still works everywhere.
	if s, _, b := e.admin(http.MethodGet, "/admin/keys", admin, nil); s != http.StatusOK {
		t.Errorf("one Authorization field: admin API = %d %v", s, b)
	}
	if s, _, b := e.post("/oauth2/introspect", url.Values{"token": {tok}}, "rs", rs); s != http.StatusOK || !active(b) {
		t.Errorf("one Authorization field: introspect = %d %v", s, b)
	}
}
