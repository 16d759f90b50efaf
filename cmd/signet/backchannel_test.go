package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/backchannel"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// logoutRP is a relying party's back-channel logout endpoint that checks
// every logout token as OpenID Connect Back-Channel Logout 1.0 §2.6 asks:
// the signature with Signet's published key (the algorithm the key names),
// typ logout+jwt, iss, aud, iat and exp, a jti never seen before, the
// events member, a sid, no nonce. down makes it answer 503.
type logoutRP struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string

	mu       sync.Mutex
	jwksBase string // where the key set is read (default: the issuer)
	down     bool
	downHits int              // requests answered 503
	received []map[string]any // verified tokens' claims
	jtis     map[string]int
	problems []string
	raw      []string // every logout_token as received
}

func newLogoutRP(t *testing.T, issuer string) *logoutRP {
	rp := &logoutRP{t: t, issuer: issuer, jtis: map[string]int{}}
	rp.srv = httptest.NewServer(http.HandlerFunc(rp.serve))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *logoutRP) serve(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.down {
		rp.downHits++
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		rp.problems = append(rp.problems, "not a form POST: "+r.Method+" "+r.Header.Get("Content-Type"))
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	tok := r.PostFormValue("logout_token")
	rp.raw = append(rp.raw, tok)
	claims, err := rp.verify(r.Context(), tok, strings.TrimPrefix(r.URL.Path, "/bc/"))
	if err != nil {
		rp.problems = append(rp.problems, err.Error())
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	rp.jtis[claims["jti"].(string)]++
	rp.received = append(rp.received, claims)
	w.WriteHeader(http.StatusOK)
}

func (rp *logoutRP) verify(ctx context.Context, tok, clientID string) (map[string]any, error) {
	msg, err := jws.Parse([]byte(tok))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, fmt.Errorf("not a JWS: %v", err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.Type() != "logout+jwt" {
		return nil, fmt.Errorf("typ %q, want logout+jwt", h.Type())
	}
	base := rp.issuer
	if rp.jwksBase != "" {
		base = rp.jwksBase
	}
	set, err := jwk.Fetch(ctx, base+"/.well-known/jwks.json")
	if err != nil {
		return nil, err
	}
	key, ok := set.LookupKeyID(h.KeyID())
	if !ok {
		return nil, fmt.Errorf("kid %s not published", h.KeyID())
	}
	if key.Algorithm().String() != h.Algorithm().String() {
		return nil, fmt.Errorf("header alg %s, key alg %s", h.Algorithm(), key.Algorithm())
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKey(key.Algorithm(), key))
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	now := float64(time.Now().Unix())
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	events, _ := c["events"].(map[string]any)
	_, hasEvent := events[backchannel.EventType]
	jti, _ := c["jti"].(string)
	sid, _ := c["sid"].(string)
	switch {
	case c["iss"] != rp.issuer:
		return nil, fmt.Errorf("iss %v", c["iss"])
	case c["aud"] != clientID:
		return nil, fmt.Errorf("aud %v at the endpoint of %s", c["aud"], clientID)
	case iat > now+5 || exp < now || exp-iat > 300:
		return nil, fmt.Errorf("iat %v exp %v (now %v)", iat, exp, now)
	case !hasEvent || len(events) != 1:
		return nil, fmt.Errorf("events %v", c["events"])
	case c["nonce"] != nil:
		return nil, fmt.Errorf("a nonce: %v", c["nonce"])
	case jti == "" || sid == "" || c["sub"] == nil:
		return nil, fmt.Errorf("jti %q sid %q sub %v", jti, sid, c["sub"])
	}
	return c, nil
}

// wait waits until n tokens were received (or fails).
func (rp *logoutRP) wait(n int) []map[string]any {
	rp.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rp.mu.Lock()
		got, probs := append([]map[string]any(nil), rp.received...), append([]string(nil), rp.problems...)
		rp.mu.Unlock()
		if len(probs) > 0 {
			rp.t.Fatalf("the RP refused logout tokens: %v", probs)
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			rp.t.Fatalf("%d logout tokens received, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (rp *logoutRP) setDown(d bool) { rp.mu.Lock(); rp.down = d; rp.mu.Unlock() }

var (
	bcActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	bcHiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	bcCodeRE   = regexp.MustCompile(`[?&]code=([A-Za-z0-9_-]+)`)
)

// bcBrowser is a browser over HTTP: a cookie jar, redirects not followed.
type bcBrowser struct {
	t      *testing.T
	base   string
	c      *http.Client
	prompt string // sent with the authorization request when set
}

func newBCBrowser(t *testing.T, base string) *bcBrowser {
	jar, _ := cookiejar.New(nil)
	return &bcBrowser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *bcBrowser) do(req *http.Request) (int, string, string) {
	b.t.Helper()
	req.Header.Set("Accept", "text/html") // as a browser navigates (mod_auth_openidc answers 401 otherwise)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func (b *bcBrowser) get(u string) (int, string, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *bcBrowser) submit(page string, extra url.Values) (int, string, string) {
	b.t.Helper()
	m := bcActionRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form on the page:\n%s", page)
	}
	v := url.Values{}
	for _, h := range bcHiddenRE.FindAllStringSubmatch(page, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	for k, vals := range extra {
		v[k] = vals
	}
	req, _ := http.NewRequest(http.MethodPost, b.base+html.UnescapeString(m[1]), strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	return b.do(req)
}

// signIn runs the code flow for clientID (signing in with the password
// when the browser has no session) and returns the ID token's sid and the
// ID token.
func (b *bcBrowser) signIn(clientID, secret, redirect, username, password string) (string, string) {
	b.t.Helper()
	verifier := "a-verifier-of-enough-length-for-pkce-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "scope": {"openid"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if b.prompt != "" {
		q.Set("prompt", b.prompt)
	}
	status, loc, body := b.get(b.base + "/oauth2/authorize?" + q.Encode())
	if status == http.StatusOK && strings.Contains(body, `name="password"`) {
		status, loc, body = b.submit(body, url.Values{"username": {username}, "password": {password}})
	}
	m := bcCodeRE.FindStringSubmatch(loc + " " + body)
	if m == nil {
		b.t.Fatalf("no code: %d %s\n%s", status, loc, body)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {m[1]}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
	req, _ := http.NewRequest(http.MethodPost, b.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		IDToken string `json:"id_token"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.IDToken == "" {
		b.t.Fatalf("token: %d %s", resp.StatusCode, raw)
	}
	parts := strings.Split(out.IDToken, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ SID string }
	_ = json.Unmarshal(payload, &c)
	return c.SID, out.IDToken
}

// startBackchannelMain is startMain with the worker's back-off shortened.
func startBackchannelMain(t *testing.T, edit func(*config.Config), tune func(*backchannel.Config)) (*Main, string) {
	t.Helper()
	c := testConfig(t, edit)
	m := &Main{Config: c, LogOutput: &signettest.LogBuffer{}, Getenv: func(string) string { return "" }, backchannelTuning: tune}
	if err := m.Open(t.Context()); err != nil {
		m.Close()
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.public.ln.Addr().String()
	return m, base
}

func fastBackoff(c *backchannel.Config) {
	c.MinBackoff, c.MaxBackoff, c.Poll = 50*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
}

// adminCall sends an admin API request with a token of the admin client.
func adminCall(t *testing.T, base, token, method, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
}

// bcFixture is a running server with a logout RP, clients notes and
// calendar (back-channel logout, session required), photos (none) and an
// admin client.
type bcFixture struct {
	m       *Main
	base    string
	rp      *logoutRP
	secrets map[string]string
	admin   string // admin access token
}

func newBCFixture(t *testing.T) *bcFixture { t.Helper(); return newBCFixtureTuned(t, fastBackoff) }

func newBCFixtureTuned(t *testing.T, tune func(*backchannel.Config)) *bcFixture {
	t.Helper()
	addr := freeAddr(t)
	m, base := startBackchannelMain(t, func(c *config.Config) {
		c.HTTP.Addr, c.Issuer = addr, "http://"+addr
		c.Keys.Algorithms = []string{"ES256", "EdDSA"}
	}, tune)
	f := &bcFixture{m: m, base: base, rp: newLogoutRP(t, base), secrets: map[string]string{}}
	ctx := t.Context()
	for _, id := range []string{"notes", "calendar", "photos"} {
		cl := clients.Client{ID: id, FirstParty: true, GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid"},
			Audiences: []string{"api"}, RedirectURIs: []string{f.rp.srv.URL + "/cb"}, PostLogoutRedirectURIs: []string{f.rp.srv.URL + "/bye"}}
		if id != "photos" {
			cl.BackchannelLogoutURI, cl.BackchannelLogoutSessionRequired = f.rp.srv.URL+"/bc/"+id, true
		}
		if id == "calendar" {
			cl.IDTokenSignedResponseAlg = "EdDSA" // the token is signed with the client's ID token algorithm
		}
		_, secret, err := m.Server.Clients().Create(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		f.secrets[id] = secret
	}
	_, secret, err := m.Server.Clients().Create(ctx, clients.Client{ID: "ops", Scopes: []string{"signet:admin"}, Audiences: []string{"signet-admin"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.admin, err = issueToken(ctx, base, "ops", secret); err != nil {
		t.Fatal(err)
	}
	return f
}

func freeAddr(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}

func (f *bcFixture) user(t *testing.T, name string) string {
	t.Helper()
	u, err := f.m.Server.Users().Create(t.Context(), users.NewUser{Username: name, Password: "a long enough password"})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// session signs name in to each client in one browser and returns the
// browser, the session's sid and the first client's ID token.
func (f *bcFixture) session(t *testing.T, name string, clientIDs ...string) (*bcBrowser, string, string) {
	t.Helper()
	b := newBCBrowser(t, f.base)
	var sid, first string
	for i, id := range clientIDs {
		s, idt := b.signIn(id, f.secrets[id], f.rp.srv.URL+"/cb", name, "a long enough password")
		if i == 0 {
			sid, first = s, idt
		} else if s != sid {
			t.Fatalf("SSO gave sid %s to %s, %s to %s", s, id, sid, clientIDs[0])
		}
	}
	return b, sid, first
}

// expect waits for the next len(want) tokens and checks them: want is
// "client sid" per token, in any order; every one names sub.
func (f *bcFixture) expect(t *testing.T, seen *int, sub string, want ...string) {
	t.Helper()
	got := f.rp.wait(*seen + len(want))
	if len(got) != *seen+len(want) {
		t.Fatalf("%d tokens, want %d", len(got), *seen+len(want))
	}
	var have []string
	for _, c := range got[*seen:] {
		have = append(have, fmt.Sprintf("%v %v", c["aud"], c["sid"]))
		if c["sub"] != sub {
			t.Errorf("token for %v: sub %v, want %s", c["aud"], c["sub"], sub)
		}
	}
	*seen += len(want)
	if strings.Join(sortStrings(have), ", ") != strings.Join(sortStrings(want), ", ") {
		t.Errorf("logout tokens for %v, want %v", have, want)
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestBackchannelLogout_EverySessionEnd (issue 21, item 2): every way a
// session ends sends each client that got tokens in it (and registered
// backchannel_logout_uri) one logout token the RP verifies, with the sid
// of its ID token; photos, without a URI, gets nothing; a withdrawn
// consent tells that client only, and the session's later end does not
// tell it again; no jti twice.
func TestBackchannelLogout_EverySessionEnd(t *testing.T) {
	f := newBCFixture(t)
	seen := 0

	// RP-initiated logout in the browser (id_token_hint and the cookie).
	alice := f.user(t, "alice")
	b, sid, idt := f.session(t, "alice", "notes", "calendar", "photos")
	if st, _, body := b.get(f.base + "/oauth2/logout?id_token_hint=" + url.QueryEscape(idt)); st != http.StatusOK || !strings.Contains(body, "signed out") {
		t.Fatalf("logout: %d %s", st, body)
	}
	f.expect(t, &seen, alice, "calendar"+" "+sid, "notes"+" "+sid)

	// RP-initiated logout from the RP's server: id_token_hint, no cookie (EndSID).
	_, sid, idt = f.session(t, "alice", "notes")
	if st, _, body := newBCBrowser(t, f.base).get(f.base + "/oauth2/logout?id_token_hint=" + url.QueryEscape(idt)); st != http.StatusOK || !strings.Contains(body, "session is ended") {
		t.Fatalf("server-side logout: %d %s", st, body)
	}
	f.expect(t, &seen, alice, "notes"+" "+sid)

	// Signing in again in the same browser starts a new session: the old
	// one ends, and its clients are told.
	b, sid, _ = f.session(t, "alice", "notes")
	b.prompt = "login"
	again, _ := b.signIn("calendar", f.secrets["calendar"], f.rp.srv.URL+"/cb", "alice", "a long enough password")
	if again == sid {
		t.Fatal("signing in again kept the session")
	}
	f.expect(t, &seen, alice, "notes "+sid)

	// Force logout (admin API; signet users logout --server is this call):
	// every session of the user.
	_, sid, _ = f.session(t, "alice", "notes", "calendar")
	adminCall(t, f.base, f.admin, http.MethodPost, "/admin/users/"+alice+"/logout", "{}")
	f.expect(t, &seen, alice, "calendar "+sid, "notes "+sid, "calendar "+again)

	// Password change.
	_, sid, _ = f.session(t, "alice", "calendar")
	adminCall(t, f.base, f.admin, http.MethodPost, "/admin/users/"+alice+"/password", `{"password":"another long password"}`)
	f.expect(t, &seen, alice, "calendar"+" "+sid)

	// Consent withdrawn: that client only, and not again at the end.
	bob := f.user(t, "bob")
	_, sid, _ = f.session(t, "bob", "notes", "calendar")
	adminCall(t, f.base, f.admin, http.MethodDelete, "/admin/users/"+bob+"/consents/calendar", "")
	f.expect(t, &seen, bob, "calendar"+" "+sid)
	// User disabled.
	adminCall(t, f.base, f.admin, http.MethodPatch, "/admin/users/"+bob, `{"disabled":true}`)
	f.expect(t, &seen, bob, "notes"+" "+sid)

	// User deleted.
	carol := f.user(t, "carol")
	_, sid, _ = f.session(t, "carol", "notes")
	adminCall(t, f.base, f.admin, http.MethodDelete, "/admin/users/"+carol, "")
	f.expect(t, &seen, carol, "notes"+" "+sid)

	// The outbox empties (so nothing more can be sent), and nothing more
	// arrived: no second copy of any.
	assertOutboxEmpty(t, f.m)
	f.rp.mu.Lock()
	defer f.rp.mu.Unlock()
	if len(f.rp.received) != seen {
		t.Errorf("%d tokens received, want %d", len(f.rp.received), seen)
	}
	for jti, n := range f.rp.jtis {
		if n != 1 {
			t.Errorf("jti %s received %d times", jti, n)
		}
	}
}

// assertOutboxEmpty waits until the outbox of m's store is empty.
func assertOutboxEmpty(t *testing.T, m *Main) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := 0
		err := m.Store.View(t.Context(), func(tx storage.Tx) error {
			return tx.Scan(backchannel.Bucket, "", func(string, []byte) error { n++; return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still in the outbox", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBackchannelLogout_Attacks (issue 21, attack table): what Signet
// sends is a logout token with events and without nonce even when the ID
// token of the session carried a nonce; a backchannel_logout_uri at a
// private or metadata address is never connected to, and one that
// redirects is not followed; both are counted as failures, retried, then
// given up.
func TestBackchannelLogout_Attacks(t *testing.T) {
	f := newBCFixtureTuned(t, func(c *backchannel.Config) {
		fastBackoff(c)
		c.GiveUpAfter = 700 * time.Millisecond
	})
	ctx := t.Context()
	alice := f.user(t, "alice")

	// What is sent: the raw token's payload, not what a lenient parser makes of it.
	_, sid, idt := f.session(t, "alice", "notes")
	if !strings.Contains(string(mustPayload(t, idt)), `"nonce":"n"`) {
		t.Fatalf("the ID token has no nonce to leak: %s", mustPayload(t, idt))
	}
	adminCall(t, f.base, f.admin, http.MethodPost, "/admin/users/"+alice+"/logout", "{}")
	seen := 0
	f.expect(t, &seen, alice, "notes "+sid)
	f.rp.mu.Lock()
	raw := f.rp.raw[0]
	f.rp.mu.Unlock()
	var members map[string]json.RawMessage
	if err := json.Unmarshal(mustPayload(t, raw), &members); err != nil {
		t.Fatal(err)
	}
	if _, ok := members["nonce"]; ok {
		t.Errorf("the logout token carries nonce: %s", mustPayload(t, raw))
	}
	if string(members["events"]) != `{"`+backchannel.EventType+`":{}}` {
		t.Errorf("events = %s", members["events"])
	}

	// A redirecting endpoint and private or metadata addresses.
	var followed int
	var mu sync.Mutex
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mu.Lock(); followed++; mu.Unlock() }))
	t.Cleanup(target.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/bc", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	bad := map[string]string{"redirecting": redirector.URL + "/bc", "private": "https://10.20.30.40/bc", "metadata": "https://169.254.169.254/latest/bc"}
	for id, uri := range bad {
		cl := clients.Client{ID: id, FirstParty: true, GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid"}, Audiences: []string{"api"},
			RedirectURIs: []string{f.rp.srv.URL + "/cb"}, BackchannelLogoutURI: uri}
		_, secret, err := f.m.Server.Clients().Create(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		f.secrets[id] = secret
	}
	f.session(t, "alice", "redirecting", "private", "metadata")
	adminCall(t, f.base, f.admin, http.MethodPost, "/admin/users/"+alice+"/logout", "{}")
	assertOutboxEmpty(t, f.m) // given up
	mu.Lock()
	defer mu.Unlock()
	if followed != 0 {
		t.Errorf("the redirect was followed %d times", followed)
	}
	body := metricsBody(t, f.base)
	for _, want := range []string{"signet_backchannel_logout_sent_total 1\n", "signet_backchannel_logout_given_up_total 3\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "signet_backchannel"))
		}
	}
	if !regexp.MustCompile(`signet_backchannel_logout_failed_total ([6-9]|\d\d)`).MatchString(body) {
		t.Errorf("failed attempts not counted (each retried at least once):\n%s", grepLines(body, "signet_backchannel"))
	}
}

func mustPayload(t *testing.T, tok string) []byte {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRun_Clients_BackchannelFlags: --backchannel-logout-uri and
// --backchannel-logout-session-required on clients create and update
// (offline), a bad URI refused naming the field, and the admin API's
// PATCH of the same fields.
func TestRun_Clients_BackchannelFlags(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	dir := t.TempDir()
	get := func() clients.Client {
		t.Helper()
		out, _, err := clientsCmd(t, "get", "notes", "--json", "--data-dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		var list []clients.Client
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
			t.Fatalf("%v %q", err, out)
		}
		return list[0]
	}
	if _, _, err := clientsCmd(t, "create", "--data-dir", dir, "--id", "notes", "--audience", "api", "--grant", "authorization_code",
		"--scope", "openid", "--redirect-uri", "https://notes.example/cb", "--backchannel-logout-uri", "https://notes.example/bc",
		"--backchannel-logout-session-required"); err != nil {
		t.Fatal(err)
	}
	if c := get(); c.BackchannelLogoutURI != "https://notes.example/bc" || !c.BackchannelLogoutSessionRequired {
		t.Fatalf("created %+v", c)
	}
	if _, _, err := clientsCmd(t, "update", "notes", "--data-dir", dir, "--backchannel-logout-uri", "http://notes.example/bc"); err == nil ||
		!strings.Contains(err.Error(), "backchannel_logout_uri") {
		t.Errorf("http to a public host: %v, want a refusal naming backchannel_logout_uri", err)
	}
	if _, _, err := clientsCmd(t, "update", "notes", "--data-dir", dir, "--backchannel-logout-uri", "", "--backchannel-logout-session-required=false"); err != nil {
		t.Fatal(err)
	}
	if c := get(); c.BackchannelLogoutURI != "" || c.BackchannelLogoutSessionRequired {
		t.Errorf("after clearing: %+v", c)
	}

	f := newBCFixture(t)
	adminCall(t, f.base, f.admin, http.MethodPatch, "/admin/clients/photos", `{"backchannel_logout_uri":"https://photos.example/bc","backchannel_logout_session_required":true}`)
	c, err := f.m.Server.Clients().Get(t.Context(), "photos")
	if err != nil || c.BackchannelLogoutURI != "https://photos.example/bc" || !c.BackchannelLogoutSessionRequired {
		t.Errorf("after PATCH: %+v %v", c, err)
	}
	req, _ := http.NewRequest(http.MethodPatch, f.base+"/admin/clients/photos", strings.NewReader(`{"backchannel_logout_uri":"https://photos.example/bc#x"}`))
	req.Header.Set("Authorization", "Bearer "+f.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "backchannel_logout_uri") {
		t.Errorf("a fragment: %d %s, want 400 naming the field", resp.StatusCode, body)
	}
}
