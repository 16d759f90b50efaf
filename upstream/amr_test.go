package upstream_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/totp"
	"github.com/signet-auth/signet/upstream"
)

// amrPair is a Signet (down) that signs in through another (up) with two
// providers that are one client at up: corp (trust_amr false) and
// trusted (trust_amr true); down has two clients: app, and strict, which
// requires a second factor.
type amrPair struct {
	t        *testing.T
	up, down *signet
	carol    string
	secrets  map[string]string // down's clients
	mu       sync.Mutex
	upIDT    string // up's last ID token, as its token endpoint answered
}

func newAMRPair(t *testing.T) *amrPair {
	ap := &amrPair{t: t, secrets: map[string]string{}}
	ap.up = newSignet(t, nil, true)
	ap.carol = ap.up.user("carol", carolPassword, "carol@corp.example", true).ID
	ap.down = newSignet(t, func(issuer string) []upstream.Provider {
		secret := ap.up.clientURIs("corp", []string{issuer + "/login/upstream/corp/callback", issuer + "/login/upstream/trusted/callback"}, nil)
		return []upstream.Provider{
			{ID: "corp", Name: "Corp SSO", Issuer: ap.up.issuer, ClientID: "corp", ClientSecret: secret, Scopes: []string{"openid"}},
			{ID: "trusted", Name: "Trusted SSO", Issuer: ap.up.issuer, ClientID: "corp", ClientSecret: secret, Scopes: []string{"openid"}, TrustAMR: true},
		}
	}, true)
	ap.secrets["app"] = ap.down.client("app", appRedirect)
	_, secret, err := ap.down.srv.Clients().Create(context.Background(), clients.Client{ID: "strict", RequireSecondFactor: true,
		GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid"}, DefaultScopes: []string{"openid"},
		Audiences: []string{"api"}, RedirectURIs: []string{appRedirect}, FirstParty: true})
	if err != nil {
		t.Fatal(err)
	}
	ap.secrets["strict"] = secret
	// Every ID token up gives down is kept, to check what up said.
	ap.up.setSwap(func(body []byte) []byte {
		var tr struct {
			IDToken string `json:"id_token"`
		}
		if json.Unmarshal(body, &tr) == nil && tr.IDToken != "" {
			ap.mu.Lock()
			ap.upIDT = tr.IDToken
			ap.mu.Unlock()
		}
		return body
	})
	return ap
}

// upClaims are the claims of up's last ID token to down.
func (ap *amrPair) upClaims() map[string]any {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return signettest.Claims(ap.t, ap.upIDT)
}

// outcome is how a sign-in at down ended.
type outcome struct {
	claims    map[string]any // down's ID token; nil after an error
	err       string         // the error sent to the client
	steppedUp bool           // down asked for its own second factor
}

// signIn runs an authorization request of client at down (with extra
// parameters) through the provider named button: at up the password and,
// when up asks, upCode; at down, when it asks for its own second factor,
// downCode.
func (ap *amrPair) signIn(b *browser, client, button string, extra url.Values, upCode, downCode string) outcome {
	t := ap.t
	t.Helper()
	verifier, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {appRedirect}, "scope": {"openid"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	p := b.Get(ap.down.issuer + "/oauth2/authorize?" + q.Encode())
	if p.Location == nil && strings.Contains(p.Body, "Sign in with "+button) { // no session at down
		p = b.Follow(b.SubmitForm(ap.down.issuer, p, "Sign in with "+button, nil))
		if p.Location == nil { // no session at up
			p = b.SubmitForm(ap.up.issuer, p, `name="password"`, url.Values{"username": {"carol"}, "password": {carolPassword}})
			if p.Location == nil && strings.Contains(p.Body, `name="code"`) {
				p = b.SubmitForm(ap.up.issuer, p, `name="code"`, url.Values{"code": {upCode}})
			}
		}
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), ap.down.issuer+"/login/upstream/") {
			t.Fatalf("up = %d, not sent back to down's callback:\n%s", p.Status, p.Body)
		}
		p = b.Follow(p)
	}
	var out outcome
	if p.Location == nil && strings.Contains(p.Body, `name="code"`) {
		out.steppedUp = true
		p = b.SubmitForm(ap.down.issuer, p, `name="code"`, url.Values{"code": {downCode}})
	}
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), appRedirect+"?") {
		t.Fatalf("down = %d, not sent back to the client:\n%s", p.Status, p.Body)
	}
	if out.err = p.Location.Query().Get("error"); out.err != "" {
		return out
	}
	status, tr := ap.down.token(client, ap.secrets[client], url.Values{"grant_type": {"authorization_code"}, "code": {p.Location.Query().Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {verifier}})
	idt, _ := tr["id_token"].(string)
	if status != http.StatusOK || idt == "" {
		t.Fatalf("redeem at down = %d %v", status, tr)
	}
	out.claims = signettest.Claims(t, idt)
	return out
}

// session is b's session at s.
func (s *signet) session(b *browser) sessions.Session {
	s.t.Helper()
	u, _ := url.Parse(s.issuer)
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == login.SessionCookie {
			sess, err := s.sess.Lookup(context.Background(), c.Value)
			if err != nil {
				s.t.Fatal(err)
			}
			return sess
		}
	}
	s.t.Fatal("no session cookie")
	return sessions.Session{}
}

// plantSession gives b a session of userID at s with factors, as a
// sign-in at s would have made it (for what no form of s can make: an
// upstream of s that said nothing, a method RFC 8176 does not register).
func (s *signet) plantSession(b *browser, userID string, factors []sessions.Factor) {
	s.t.Helper()
	cookie, _, err := s.sess.StartUpstream(context.Background(), userID, factors, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	u, _ := url.Parse(s.issuer)
	b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: login.SessionCookie, Value: cookie, Path: "/"}})
}

// enrolTOTP sets up an authenticator app for userID at s and returns
// the recovery codes (each a one-time code: amr otp).
func (s *signet) enrolTOTP(userID string) []string {
	s.t.Helper()
	ctx := context.Background()
	secret, err := s.mfa.BeginTOTP(ctx, userID)
	if err != nil {
		s.t.Fatal(err)
	}
	codes, err := s.mfa.ConfirmTOTP(ctx, userID, totp.Code(secret, totp.Step(time.Now())))
	if err != nil {
		s.t.Fatal(err)
	}
	return codes
}

func amrOf(c map[string]any) ([]string, bool) {
	raw, ok := c["amr"]
	list, _ := raw.([]any)
	var out []string
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out, ok
}

// checkClaims fails unless c has amr (absent for nil) and acr.
func checkClaims(t *testing.T, what string, c map[string]any, amr []string, acr string) {
	t.Helper()
	got, present := amrOf(c)
	switch {
	case amr == nil && present:
		t.Errorf("%s: amr = %v, want no amr claim", what, c["amr"])
	case amr != nil && !slices.Equal(got, amr):
		t.Errorf("%s: amr = %v, want %v", what, c["amr"], amr)
	}
	if c["acr"] != acr {
		t.Errorf("%s: acr = %v, want %s", what, c["acr"], acr)
	}
}

// TestUpstreamAMR_NothingSaid: an upstream whose ID token has no amr
// gives an ID token without amr (never "pwd": no password was typed at
// Signet) and the upstream acr, with the sign-in's auth_time. A client
// that needs a second factor gets unmet_authentication_requirements while
// the user has none at Signet, and the code after one is set up, with
// amr [otp mfa] and acr mfa.
func TestUpstreamAMR_NothingSaid(t *testing.T) {
	ap := newAMRPair(t)
	nothing := []sessions.Factor{{Upstream: "elsewhere", At: time.Now().Unix()}}
	b := newBrowser(t)
	ap.up.plantSession(b, ap.carol, nothing)
	before := time.Now().Unix()
	out := ap.signIn(b, "app", "Corp SSO", nil, "", "")
	if _, said := ap.upClaims()["amr"]; said {
		t.Fatalf("up's ID token has amr %v: the test needs one without", ap.upClaims()["amr"])
	}
	checkClaims(t, "app", out.claims, nil, sessions.ACRUpstream)
	if at, _ := out.claims["auth_time"].(float64); int64(at) < before-1 || int64(at) > time.Now().Unix()+1 {
		t.Errorf("auth_time = %v, want the sign-in's time (%d)", out.claims["auth_time"], before)
	}
	if s := ap.down.session(b); len(s.Factors) != 1 || s.Factors[0].Upstream != "corp" || s.Factors[0].Method != "" || s.HasSecondFactor() {
		t.Errorf("down's session factors = %+v: want one sign-in at corp that named no method", s.Factors)
	}
	sub, _ := out.claims["sub"].(string)

	b = newBrowser(t)
	ap.up.plantSession(b, ap.carol, nothing)
	if out := ap.signIn(b, "app", "Corp SSO", url.Values{"acr_values": {sessions.ACRMFA}}, "", ""); out.err != "unmet_authentication_requirements" {
		t.Fatalf("acr_values mfa without a factor at down: %+v, want unmet_authentication_requirements", out)
	}
	codes := ap.down.enrolTOTP(sub)
	b = newBrowser(t)
	ap.up.plantSession(b, ap.carol, nothing)
	out = ap.signIn(b, "strict", "Corp SSO", nil, "", codes[0])
	if !out.steppedUp {
		t.Fatal("strict client: no step-up at down")
	}
	checkClaims(t, "after the step-up", out.claims, []string{"otp", "mfa"}, sessions.ACRMFA)
}

// TestUpstreamAMR_Password: up says pwd: down's ID token says pwd, from
// the upstream (the session's factor is marked corp's), with the upstream
// acr, through a trusted provider too (pwd alone is no second factor);
// neither meets a client that requires a second factor.
func TestUpstreamAMR_Password(t *testing.T) {
	ap := newAMRPair(t)
	for _, button := range []string{"Corp SSO", "Trusted SSO"} {
		b := newBrowser(t)
		out := ap.signIn(b, "app", button, nil, "", "")
		if amr, _ := amrOf(ap.upClaims()); !slices.Equal(amr, []string{"pwd"}) {
			t.Fatalf("up's amr = %v, want [pwd]", amr)
		}
		checkClaims(t, button, out.claims, []string{"pwd"}, sessions.ACRUpstream)
		id := strings.ToLower(strings.TrimSuffix(button, " SSO"))
		if s := ap.down.session(b); len(s.Factors) != 1 || s.Factors[0] != (sessions.Factor{Method: "pwd", At: s.AuthTime, Upstream: id, Trusted: id == "trusted"}) {
			t.Errorf("%s: down's session factors = %+v: want pwd from %s", button, s.Factors, id)
		}
		if out := ap.signIn(newBrowser(t), "strict", button, nil, "", ""); out.err != "unmet_authentication_requirements" {
			t.Errorf("%s: strict client: %+v, want unmet_authentication_requirements", button, out)
		}
	}
}

// TestUpstreamAMR_UpstreamMFA: carol signs in at up with her password and
// a code, so up says [pwd otp mfa], and down repeats it. Through corp
// (trust_amr false) that is not down's second factor: acr is the
// upstream's, a client that requires a second factor gets a step-up at
// down (with down's own code), after which acr is mfa; the stepped-up
// session keeps corp's methods and corp for its logout. Through trusted
// (trust_amr true) there is no step-up: acr mfa at once, for the strict
// client and for acr_values.
func TestUpstreamAMR_UpstreamMFA(t *testing.T) {
	ap := newAMRPair(t)
	upCodes := ap.up.enrolTOTP(ap.carol)
	all := []string{"pwd", "otp", "mfa"}

	out := ap.signIn(newBrowser(t), "app", "Corp SSO", nil, upCodes[0], "")
	if amr, _ := amrOf(ap.upClaims()); !slices.Equal(amr, all) {
		t.Fatalf("up's amr = %v, want %v", amr, all)
	}
	if out.steppedUp {
		t.Error("app (no second factor required): stepped up")
	}
	checkClaims(t, "corp, app", out.claims, all, sessions.ACRUpstream)
	sub, _ := out.claims["sub"].(string)

	if out := ap.signIn(newBrowser(t), "strict", "Corp SSO", nil, upCodes[1], ""); out.err != "unmet_authentication_requirements" {
		t.Fatalf("corp, strict, no factor at down: %+v, want unmet_authentication_requirements", out)
	}
	downCodes := ap.down.enrolTOTP(sub)
	b := newBrowser(t)
	out = ap.signIn(b, "strict", "Corp SSO", nil, upCodes[2], downCodes[0])
	if !out.steppedUp {
		t.Fatal("corp, strict: no step-up at down (an untrusted upstream's mfa met the requirement)")
	}
	checkClaims(t, "corp, strict, after the step-up", out.claims, all, sessions.ACRMFA)
	s := ap.down.session(b)
	if s.Upstream == nil || s.Upstream.Provider != "corp" {
		t.Errorf("stepped-up session's upstream = %+v, want corp (its logout goes through corp)", s.Upstream)
	}
	var from []string
	for _, f := range s.Factors {
		from = append(from, f.Upstream+":"+f.Method)
	}
	if !slices.Equal(from, []string{"corp:pwd", "corp:otp", "corp:mfa", ":otp"}) {
		t.Errorf("stepped-up session's factors = %v, want corp's three and down's otp", from)
	}
	// The same browser, another request needing a second factor: the
	// session has it, no new step-up.
	if out := ap.signIn(b, "strict", "Corp SSO", nil, "", ""); out.steppedUp || out.claims["acr"] != sessions.ACRMFA {
		t.Errorf("corp again in the same browser: %+v", out)
	}

	for _, extra := range []struct {
		client string
		q      url.Values
	}{{"strict", nil}, {"app", url.Values{"acr_values": {sessions.ACRMFA}}}} {
		out := ap.signIn(newBrowser(t), extra.client, "Trusted SSO", extra.q, upCodes[3+len(extra.q)], "")
		if out.steppedUp {
			t.Errorf("trusted, %s %v: stepped up", extra.client, extra.q)
		}
		checkClaims(t, "trusted, "+extra.client, out.claims, all, sessions.ACRMFA)
	}
}

// TestUpstreamAMR_Unregistered: values RFC 8176 does not register (a
// made-up method, one in capitals) are dropped; the registered ones stay.
func TestUpstreamAMR_Unregistered(t *testing.T) {
	ap := newAMRPair(t)
	b := newBrowser(t)
	now := time.Now().Unix()
	ap.up.plantSession(b, ap.carol, []sessions.Factor{{Method: "pwd", At: now}, {Method: "eye-scan", At: now}, {Method: "PWD", At: now}})
	out := ap.signIn(b, "app", "Corp SSO", nil, "", "")
	if amr, _ := amrOf(ap.upClaims()); !slices.Equal(amr, []string{"pwd", "eye-scan", "PWD", "mfa"}) {
		t.Fatalf("up's amr = %v: the test needs unregistered values", amr)
	}
	checkClaims(t, "app", out.claims, []string{"pwd", "mfa"}, sessions.ACRUpstream)
}
