package authority_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/users"
)

const (
	testAud      = "https://api.example.com"
	testPassword = "correct horse battery staple"
)

// userClient registers a client allowed the password and refresh grants.
func (e *env) userClient(id string, mod func(*clients.Client)) string {
	e.t.Helper()
	c := clients.Client{ID: id, GrantTypes: []string{"password", "refresh_token"}, Scopes: []string{"read", "write", "email", "profile"},
		DefaultScopes: []string{"read"}, Audiences: []string{testAud, "https://other.example.com"}}
	if mod != nil {
		mod(&c)
	}
	return e.createClient(c)
}

// createUser registers a user with testPassword and returns its id.
func (e *env) createUser(username string) string {
	e.t.Helper()
	u, err := e.srv.Users().Create(e.t.Context(), users.NewUser{Username: username, Password: testPassword,
		Email: username + "@example.com", Roles: []string{"staff"}})
	if err != nil {
		e.t.Fatalf("create user %s: %v", username, err)
	}
	return u.ID
}

// post sends a form to path with Basic credentials (id may be empty).
func (e *env) post(path string, form url.Values, id, secret string) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return e.do(req)
}

// login runs the password grant and fails the test unless it succeeds.
func (e *env) login(id, secret, username string, extra url.Values) (access, refresh string) {
	e.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {testPassword}}
	for k, v := range extra {
		form[k] = v
	}
	status, _, body := e.post("/oauth2/token", form, id, secret)
	if status != http.StatusOK {
		e.t.Fatalf("login %s via %s = %d %v, want 200", username, id, status, body)
	}
	rt, _ := body["refresh_token"].(string)
	return body["access_token"].(string), rt
}

func (e *env) refresh(id, secret, rt string, extra url.Values) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for k, v := range extra {
		form[k] = v
	}
	status, _, body := e.post("/oauth2/token", form, id, secret)
	return status, body
}

// introspect asks as the env's introspecting client "rs".
func (e *env) introspect(tok string) map[string]any {
	e.t.Helper()
	status, _, body := e.post("/oauth2/introspect", url.Values{"token": {tok}}, "rs", e.rsSecret())
	if status != http.StatusOK {
		e.t.Fatalf("introspect = %d %v", status, body)
	}
	return body
}

var rsSecrets sync.Map // *env → secret of its "rs" client

func (e *env) rsSecret() string {
	if v, ok := rsSecrets.Load(e); ok {
		return v.(string)
	}
	sec := e.createClient(clients.Client{ID: "rs", Audiences: []string{testAud}, Introspect: true})
	rsSecrets.Store(e, sec)
	e.t.Cleanup(func() { rsSecrets.Delete(e) })
	return sec
}

func active(m map[string]any) bool { b, _ := m["active"].(bool); return b }

func (e *env) feed(etag string) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/oauth2/revocations", nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	return e.do(req)
}

// auditHas reports whether the audit trail has an event with action whose
// detail contains detail.
func (e *env) auditEvent(action string) (authority.AuditEvent, bool) {
	e.t.Helper()
	evs, err := authority.NewAuditLog(e.store, nil).List(e.t.Context(), 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Action == action {
			return ev, true
		}
	}
	return authority.AuditEvent{}, false
}

// TestEndToEnd_PasswordRefresh_Reuse: golang.org/x/oauth2 logs in with the
// password grant and its TokenSource refreshes ten times; every refresh
// token differs and the one before it is dead. Presenting an old one
// again kills the family: the latest refresh token fails too, and the
// audit trail says why.
func TestEndToEnd_PasswordRefresh_Reuse(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := e.userClient("app", nil)
	uid := e.createUser("alice")
	ctx := t.Context()
	cfg := oauth2.Config{ClientID: "app", ClientSecret: secret, Scopes: []string{"read", "email"},
		Endpoint: oauth2.Endpoint{TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := cfg.PasswordCredentialsToken(ctx, "alice", testPassword)
	if err != nil {
		t.Fatalf("PasswordCredentialsToken: %v", err)
	}
	claims := decodePayload(t, tok.AccessToken)
	if claims["sub"] != uid || claims["client_id"] != "app" || claims["email"] != "alice@example.com" || claims["scope"] != "read email" {
		t.Errorf("claims = %v, want sub %s, client_id app, email, scope 'read email'", claims, uid)
	}
	if roles, _ := claims["roles"].([]any); len(roles) != 1 || roles[0] != "staff" {
		t.Errorf("roles = %v, want [staff]", claims["roles"])
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	seen := map[string]bool{tok.RefreshToken: true}
	chain := []string{tok.RefreshToken}
	for i := range 10 {
		e.clock.Add(time.Minute)
		// An expired token makes the TokenSource refresh.
		ts := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)})
		next, err := ts.Token()
		if err != nil {
			t.Fatalf("refresh %d: %v", i+1, err)
		}
		if next.RefreshToken == "" || seen[next.RefreshToken] {
			t.Fatalf("refresh %d: refresh token %q is empty or was seen before", i+1, next.RefreshToken)
		}
		if next.AccessToken == tok.AccessToken {
			t.Fatalf("refresh %d: same access token", i+1)
		}
		if active(e.introspect(tok.RefreshToken)) {
			t.Errorf("refresh %d: the previous refresh token is still active", i+1)
		}
		if !active(e.introspect(next.RefreshToken)) {
			t.Errorf("refresh %d: the new refresh token is not active", i+1)
		}
		seen[next.RefreshToken] = true
		chain = append(chain, next.RefreshToken)
		tok = next
	}
	if c := decodePayload(t, tok.AccessToken); c["sub"] != uid || c["scope"] != "read email" {
		t.Errorf("claims after refreshes = %v", c)
	}

	// Replay the third refresh token: reuse.
	status, body := e.refresh("app", secret, chain[2], nil)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("reuse = %d %v, want 400 invalid_grant", status, body)
	}
	status, body = e.refresh("app", secret, tok.RefreshToken, nil)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("latest after reuse = %d %v, want 400 invalid_grant", status, body)
	}
	if active(e.introspect(tok.AccessToken)) {
		t.Error("the family's last access token is still active after reuse")
	}
	ev, ok := e.auditEvent("refresh.reuse_detected")
	if !ok || ev.Outcome != "family_revoked" || ev.Actor != "app" || ev.Target != uid || !strings.Contains(ev.Detail, "refresh_token_reuse") {
		t.Errorf("audit event = %+v (found %t), want refresh.reuse_detected naming the reason", ev, ok)
	}
	// Through x/oauth2 the failure is an RFC 6749 error.
	_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("TokenSource after reuse: %v, want invalid_grant", err)
	}
}

// TestRefresh_Race: 50 goroutines present the same refresh token at once.
// Exactly one gets tokens; the others are reuse, so the family ends revoked.
func TestRefresh_Race(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"EdDSA"}})
	secret := e.userClient("app", nil)
	e.createUser("alice")
	_, rt := e.login("app", secret, "alice", nil)
	const n = 50
	start := make(chan struct{})
	type result struct {
		status int
		body   map[string]any
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s, b := e.refresh("app", secret, rt, nil)
			results <- result{s, b}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	ok := 0
	var winner string
	for r := range results {
		switch {
		case r.status == http.StatusOK:
			ok++
			winner, _ = r.body["refresh_token"].(string)
		case r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant":
			t.Errorf("refresh = %d %v, want 200 or 400 invalid_grant", r.status, r.body)
		}
	}
	if ok != 1 {
		t.Fatalf("%d requests got tokens, want exactly 1", ok)
	}
	if active(e.introspect(winner)) {
		t.Error("the winner's refresh token is active: the family was not revoked after reuse")
	}
	if s, b := e.refresh("app", secret, winner, nil); s != http.StatusBadRequest {
		t.Errorf("refresh with the winner's token = %d %v, want 400", s, b)
	}
	if _, found := e.auditEvent("refresh.reuse_detected"); !found {
		t.Error("no reuse audit event")
	}
}

// TestRevocation_Introspection_Logout_Feed: revoking and logging out affect
// exactly the tokens they name, and the feed carries what verifiers need.
func TestRevocation_Introspection_Logout_Feed(t *testing.T) {
	e := newEnv(t, envOptions{})
	secA := e.userClient("a", nil)
	secB := e.userClient("b", nil)
	alice, bob := e.createUser("alice"), e.createUser("bob")
	at1, rt1 := e.login("a", secA, "alice", nil)
	at2, rt2 := e.login("b", secB, "alice", nil)
	at3, rt3 := e.login("a", secA, "bob", nil)

	in := e.introspect(at1)
	c1 := decodePayload(t, at1)
	for k, want := range map[string]any{"active": true, "sub": alice, "client_id": "a", "scope": "read", "aud": testAud, "iss": e.issuer,
		"jti": c1["jti"], "exp": c1["exp"], "iat": c1["iat"], "token_type": "Bearer"} {
		if in[k] != want {
			t.Errorf("introspect(at1)[%s] = %v, want %v", k, in[k], want)
		}
	}
	if in := e.introspect(rt1); !active(in) || in["token_type"] != "refresh_token" || in["sub"] != alice || in["client_id"] != "a" {
		t.Errorf("introspect(rt1) = %v", in)
	}

	status, etag0, feed := e.feed("")
	if status != http.StatusOK || len(feed["revoked_jtis"].(map[string]any)) != 0 || etag0.Get("ETag") == "" ||
		!strings.Contains(etag0.Get("Cache-Control"), "max-age=") {
		t.Fatalf("empty feed = %d %v %v", status, etag0, feed)
	}
	if s, _, _ := e.feed(etag0.Get("ETag")); s != http.StatusNotModified {
		t.Errorf("feed with matching If-None-Match = %d, want 304", s)
	}

	// Revoke an access token.
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {at1}, "token_type_hint": {"access_token"}}, "a", secA); s != http.StatusOK {
		t.Fatalf("revoke at1 = %d %v", s, b)
	}
	if active(e.introspect(at1)) {
		t.Error("at1 active after revocation")
	}
	status, h, feed := e.feed(etag0.Get("ETag"))
	jtis, _ := feed["revoked_jtis"].(map[string]any)
	if status != http.StatusOK || h.Get("ETag") == etag0.Get("ETag") || jtis[c1["jti"].(string)] != c1["exp"] {
		t.Errorf("feed after revoking at1 = %d %v, want jti %v → exp %v and a new ETag", status, feed, c1["jti"], c1["exp"])
	}
	// b may not revoke a's tokens; nothing happens to them.
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {at3}}, "b", secB); s != http.StatusBadRequest || b["error"] != "unauthorized_client" {
		t.Errorf("b revokes a's token = %d %v, want 400 unauthorized_client", s, b)
	}
	if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {rt3}}, "b", secB); s != http.StatusBadRequest || b["error"] != "unauthorized_client" {
		t.Errorf("b revokes a's refresh token = %d %v, want 400 unauthorized_client", s, b)
	}
	for _, tok := range []string{at2, at3, rt2, rt3} {
		if !active(e.introspect(tok)) {
			t.Errorf("a token of another client or user became inactive")
		}
	}
	// Unknown and repeated revocations are 200.
	unknown, _ := strings.CutSuffix(rt1, rt1[len(rt1)-1:])
	if s, _, _ := e.post("/oauth2/revoke", url.Values{"token": {unknown + "A"}}, "a", secA); s != http.StatusOK {
		t.Errorf("revoke unknown = %d, want 200", s)
	}
	// Revoke a refresh token: its family dies.
	for range 2 {
		if s, _, b := e.post("/oauth2/revoke", url.Values{"token": {rt1}, "token_type_hint": {"refresh_token"}}, "a", secA); s != http.StatusOK {
			t.Fatalf("revoke rt1 = %d %v", s, b)
		}
	}
	if s, b := e.refresh("a", secA, rt1, nil); s != http.StatusBadRequest || b["error"] != "invalid_grant" {
		t.Errorf("refresh with revoked rt1 = %d %v", s, b)
	}
	if !active(e.introspect(rt2)) || !active(e.introspect(rt3)) {
		t.Error("revoking rt1 touched another family")
	}

	// Logout alice: every family of hers dies, bob's live on, the feed has a cutoff.
	e.clock.Add(time.Second)
	status, _, out := e.admin(http.MethodPost, "/admin/users/"+alice+"/logout", e.adminToken(), nil)
	if status != http.StatusOK || out["families_revoked"] != float64(1) {
		t.Fatalf("logout = %d %v, want 1 family revoked (rt1's was already revoked)", status, out)
	}
	if s, _ := e.refresh("b", secB, rt2, nil); s != http.StatusBadRequest {
		t.Errorf("alice's refresh token via b after logout = %d, want 400", s)
	}
	if active(e.introspect(at2)) || active(e.introspect(rt2)) {
		t.Error("alice's tokens active after logout")
	}
	if !active(e.introspect(at3)) || !active(e.introspect(rt3)) {
		t.Error("bob's tokens inactive after alice's logout")
	}
	_, _, feed = e.feed("")
	cutoffs, _ := feed["subject_cutoffs_hmac"].(map[string]any)
	c2 := decodePayload(t, at2)
	if cut, ok := cutoffs[authority.FeedSubjectHash(testFeedKey, alice)].(float64); !ok || cut <= c2["iat"].(float64) {
		t.Errorf("feed cutoffs = %v, want alice's cutoff after iat %v", cutoffs, c2["iat"])
	}
	if _, ok := cutoffs[authority.FeedSubjectHash(testFeedKey, bob)]; ok {
		t.Error("bob has a cutoff")
	}
	// A verifier reading the feed rejects alice's old token and accepts
	// bob's and alice's new one (issued in the same second as the logout).
	at4, _ := e.login("a", secA, "alice", nil)
	v, err := jwks.NewVerifier(t.Context(), e.issuer, jwks.WithInsecureHTTP(), jwks.WithDenylist(true), jwks.WithDenylistSubjectKey(testFeedKey), jwks.WithClock(e.clock.Now), jwks.WithAudience(testAud))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, tc := range []struct {
		name, tok string
		revoked   bool
	}{{"revoked at1", at1, true}, {"alice before logout", at2, true}, {"bob", at3, false}, {"alice after logout", at4, false}} {
		_, err := v.Verify(t.Context(), tc.tok)
		if got := errors.Is(err, jwks.ErrRevoked); got != tc.revoked || (!tc.revoked && err != nil) {
			t.Errorf("verifier on %s: %v, want revoked=%t", tc.name, err, tc.revoked)
		}
	}
}

// TestRefresh_ReuseGrace: within the client's grace, the just-rotated
// token may be presented again (a lost response) and the family lives;
// the token it replaces is then dead; outside the grace, reuse kills it.
func TestRefresh_ReuseGrace(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("app", func(c *clients.Client) { c.RefreshReuseGrace = clients.Duration(10 * time.Second) })
	e.createUser("alice")
	_, rt0 := e.login("app", sec, "alice", nil)
	s, b := e.refresh("app", sec, rt0, nil)
	if s != http.StatusOK {
		t.Fatal(s, b)
	}
	rt1 := b["refresh_token"].(string) // "lost"
	e.clock.Add(5 * time.Second)
	s, b = e.refresh("app", sec, rt0, nil)
	if s != http.StatusOK {
		t.Fatalf("retry within grace = %d %v, want 200", s, b)
	}
	rt2 := b["refresh_token"].(string)
	if active(e.introspect(rt1)) || !active(e.introspect(rt2)) {
		t.Error("after a grace retry, want the lost token dead and the new one live")
	}
	e.clock.Add(6 * time.Second)
	if s, _ := e.refresh("app", sec, rt0, nil); s != http.StatusBadRequest {
		t.Errorf("retry after grace = %d, want 400", s)
	}
	if active(e.introspect(rt2)) {
		t.Error("reuse after the grace did not revoke the family")
	}
}

// TestRefresh_Cookie: a cookie client gets its refresh token in an
// HttpOnly, Secure, SameSite=Strict cookie and refreshes from it.
func TestRefresh_Cookie(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("spa", func(c *clients.Client) { c.RefreshTokenCookie = true })
	e.createUser("alice")
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}}
	status, h, body := e.post("/oauth2/token", form, "spa", sec)
	if status != http.StatusOK || body["refresh_token"] != nil {
		t.Fatalf("login = %d %v, want 200 without refresh_token in the body", status, body)
	}
	ck := h.Get("Set-Cookie")
	for _, want := range []string{"signet_refresh_token=", "Path=/oauth2", "HttpOnly", "Secure", "SameSite=Strict", "Max-Age="} {
		if !strings.Contains(ck, want) {
			t.Errorf("Set-Cookie %q lacks %s", ck, want)
		}
	}
	rt := strings.TrimPrefix(strings.Split(ck, ";")[0], "signet_refresh_token=")
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader("grant_type=refresh_token"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("spa", sec)
	req.AddCookie(&http.Cookie{Name: "signet_refresh_token", Value: rt})
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Set-Cookie"), "signet_refresh_token=") ||
		strings.Contains(resp.Header.Get("Set-Cookie"), rt) {
		t.Errorf("refresh from cookie = %d, Set-Cookie %q; want 200 and a new cookie", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
}

// TestLogin_RateLimit: failures block a username from an address, and an
// address, for one window only; an address that logged in before is not
// blocked by failures from elsewhere.
func TestLogin_RateLimit(t *testing.T) {
	e := newEnv(t, envOptions{login: authority.LoginRateLimit{Window: time.Minute, PerUserIP: 3, PerIP: 100, PerUser: 5}})
	sec := e.userClient("app", nil)
	e.createUser("alice")
	try := func(ip, password string) *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}}
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", sec)
		req.RemoteAddr = ip + ":1234"
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		return w
	}
	if w := try("10.0.0.1", testPassword); w.Code != http.StatusOK { // 10.0.0.1 becomes known
		t.Fatal(w.Code, w.Body)
	}
	for range 3 {
		if w := try("10.0.0.2", "wrong"); w.Code != http.StatusBadRequest {
			t.Fatalf("failure = %d %s", w.Code, w.Body)
		}
	}
	w := try("10.0.0.2", testPassword)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "temporarily_unavailable") {
		t.Fatalf("4th attempt from 10.0.0.2 = %d %s %v, want 429 with Retry-After", w.Code, w.Body, w.Header())
	}
	// Two more addresses push alice over the per-username limit.
	try("10.0.0.3", "wrong")
	try("10.0.0.4", "wrong")
	if w := try("10.0.0.5", testPassword); w.Code != http.StatusTooManyRequests {
		t.Errorf("new address while alice is over the per-username limit = %d, want 429", w.Code)
	}
	if w := try("10.0.0.1", testPassword); w.Code != http.StatusOK {
		t.Errorf("known address while alice is over the per-username limit = %d %s, want 200", w.Code, w.Body)
	}
	e.clock.Add(time.Minute + time.Second)
	for _, ip := range []string{"10.0.0.2", "10.0.0.5"} {
		if w := try(ip, testPassword); w.Code != http.StatusOK {
			t.Errorf("after the window, %s = %d %s, want 200", ip, w.Code, w.Body)
		}
	}
}

// TestSessions_NoPlaintextAtRest: after logins, refreshes and revocations,
// neither the bbolt file nor the logs contain a refresh token or a
// password.
func TestSessions_NoPlaintextAtRest(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("app", nil)
	uid := e.createUser("alice")
	secrets := []string{testPassword}
	_, rt := e.login("app", sec, "alice", nil)
	secrets = append(secrets, rt)
	for range 3 {
		s, b := e.refresh("app", sec, rt, nil)
		if s != http.StatusOK {
			t.Fatal(s, b)
		}
		rt = b["refresh_token"].(string)
		secrets = append(secrets, rt)
	}
	const newPassword = "another long passphrase"
	if s, _, b := e.admin(http.MethodPost, "/admin/users/"+uid+"/password", e.adminToken(), map[string]string{"password": newPassword}); s != http.StatusNoContent {
		t.Fatal(s, b)
	}
	secrets = append(secrets, newPassword)
	e.post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"a wrong guess here"}}, "app", sec)
	secrets = append(secrets, "a wrong guess here")
	e.post("/oauth2/revoke", url.Values{"token": {rt}}, "app", sec)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "/oauth2/token") {
		t.Fatal("the logs did not capture the requests")
	}
	for _, s := range secrets {
		if bytes.Contains(db, []byte(s)) {
			t.Errorf("the database file contains %.6s…", s)
		}
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain %.6s…", s)
		}
	}
}

// TestPurge: expired and revoked sessions, and denylist entries and cutoffs
// that can no longer matter, are deleted; live sessions are kept.
func TestPurge(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("app", nil)
	short := e.userClient("short", func(c *clients.Client) { c.RefreshIdleTTL = clients.Duration(time.Hour) })
	alice := e.createUser("alice")
	e.createUser("bob")
	at, _ := e.login("app", sec, "alice", nil)
	e.post("/oauth2/revoke", url.Values{"token": {at}}, "app", sec)
	e.login("short", short, "bob", nil)
	if _, err := e.srv.Logout(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	n, err := purge(t, e)
	if err != nil || n != 3 { // alice's family: record, token, index entry
		t.Errorf("Purge = %d, %v; want 3 (the logged-out family)", n, err)
	}
	_, live := e.login("app", sec, "bob", nil)
	e.clock.Add(2 * time.Hour) // bob's short family idles out; the access token and cutoff too
	n, err = purge(t, e)
	if err != nil || n != 5 { // bob's short family (3), alice's jti and cutoff
		t.Errorf("Purge later = %d, %v; want 5", n, err)
	}
	_, _, feed := e.feed("")
	if len(feed["revoked_jtis"].(map[string]any)) != 0 || len(feed["subject_cutoffs_hmac"].(map[string]any)) != 0 {
		t.Errorf("feed after purge = %v, want empty", feed)
	}
	if s, b := e.refresh("app", sec, live, nil); s != http.StatusOK {
		t.Errorf("live family after purge: refresh = %d %v", s, b)
	}
}

// TestUsers_AdminAPI: the user lifecycle through the admin API.
func TestUsers_AdminAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.adminToken()
	sec := e.userClient("app", nil)
	status, _, u := e.admin(http.MethodPost, "/admin/users", tok, map[string]any{"username": "Carol", "password": testPassword, "roles": []string{"ops"},
		"claims": map[string]any{"team": "payments", "groups": []string{"a", "b"}}})
	if status != http.StatusCreated || u["id"] == "" || u["password_hash"] != nil || u["password"] != nil {
		t.Fatalf("create = %d %v", status, u)
	}
	id := u["id"].(string)
	if s, _, b := e.admin(http.MethodPost, "/admin/users", tok, map[string]any{"username": "carol", "password": testPassword}); s != http.StatusConflict {
		t.Errorf("duplicate username (other case) = %d %v, want 409", s, b)
	}
	if s, _, b := e.admin(http.MethodPost, "/admin/users", tok, map[string]any{"username": "x y", "password": "short", "claims": map[string]any{"sub": "x"}}); s != http.StatusBadRequest ||
		!strings.Contains(b["error_description"].(string), "username") || !strings.Contains(b["error_description"].(string), "password") || !strings.Contains(b["error_description"].(string), "claims") {
		t.Errorf("invalid user = %d %v, want 400 naming username, password and claims", s, b)
	}
	at, rt := e.login("app", sec, "carol", url.Values{"scope": {"read profile"}})
	if c := decodePayload(t, at); c["team"] != "payments" || c["preferred_username"] != "Carol" {
		t.Errorf("profile claims = %v", c)
	}
	if s, _, b := e.admin(http.MethodGet, "/admin/users/"+id, tok, nil); s != http.StatusOK || b["username"] != "Carol" {
		t.Errorf("get = %d %v", s, b)
	}
	if s, _, b := e.admin(http.MethodGet, "/admin/users", tok, nil); s != http.StatusOK || len(b["users"].([]any)) != 1 {
		t.Errorf("list = %d %v", s, b)
	}
	// Disabling logs the user out.
	if s, _, b := e.admin(http.MethodPatch, "/admin/users/"+id, tok, map[string]any{"disabled": true}); s != http.StatusOK || b["disabled"] != true {
		t.Fatalf("disable = %d %v", s, b)
	}
	if active(e.introspect(rt)) || active(e.introspect(at)) {
		t.Error("tokens active after disabling the user")
	}
	if s, _, b := e.post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {testPassword}}, "app", sec); s != http.StatusBadRequest || b["error"] != "invalid_grant" {
		t.Errorf("disabled user login = %d %v", s, b)
	}
	e.admin(http.MethodPatch, "/admin/users/"+id, tok, map[string]any{"disabled": false})
	// Import a bcrypt hash; login works and upgrades it to argon2id.
	bh, err := bcrypt.GenerateFromPassword([]byte("bcrypt password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bcryptHash := string(bh)
	if s, _, b := e.admin(http.MethodPost, "/admin/users/"+id+"/password", tok, map[string]any{"password_hash": bcryptHash}); s != http.StatusNoContent {
		t.Fatalf("import bcrypt = %d %v", s, b)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"bcrypt password"}}
	for range 2 {
		if s, _, b := e.post("/oauth2/token", form, "app", sec); s != http.StatusOK {
			t.Fatalf("login with imported bcrypt = %d %v", s, b)
		}
	}
	if s, _, b := e.admin(http.MethodPost, "/admin/users/"+id+"/password", tok, map[string]any{"password_hash": "$md5$nope"}); s != http.StatusBadRequest {
		t.Errorf("bad hash = %d %v", s, b)
	}
	if s, _, _ := e.admin(http.MethodDelete, "/admin/users/"+id, tok, nil); s != http.StatusNoContent {
		t.Errorf("delete = %d", s)
	}
	if s, _, _ := e.admin(http.MethodGet, "/admin/users/"+id, tok, nil); s != http.StatusNotFound {
		t.Errorf("get deleted = %d", s)
	}
	if s, _, _ := e.admin(http.MethodPost, "/admin/users/nope/logout", tok, nil); s != http.StatusNotFound {
		t.Errorf("logout unknown = %d", s)
	}
	if ev, ok := e.auditEvent("users.delete"); !ok || ev.Target != id {
		t.Errorf("audit = %+v", ev)
	}
}
