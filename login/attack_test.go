package login_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/login"
)

// noRedirect checks that an authorization request with redirect_uri u is
// answered with a page at Signet and never sent anywhere.
func noRedirect(t *testing.T, e *env, client, u string) {
	t.Helper()
	_, ch := signettest.PKCE()
	p := e.browser().Authorize(authzQuery(ch, url.Values{"client_id": {client}, "redirect_uri": {u}}))
	if p.Location != nil || p.Status != http.StatusBadRequest {
		t.Fatalf("redirect_uri %q: %d, redirected to %v", u, p.Status, p.Location)
	}
}

// forge signs claims with a key Signet does not have, under kid.
func forge(t *testing.T, kid string, c map[string]any) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	_ = hdr.Set(jws.TypeKey, "JWT")
	b, _ := json.Marshal(c)
	tok, err := jws.Sign(b, jws.WithKey(jwa.ES256, k, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// TestAttacks: every row is an attack on the browser login and what stops it.
func TestAttacks(t *testing.T) {
	rows := []struct {
		name string
		run  func(t *testing.T, e *env, secret string)
	}{
		// Open redirects through redirect_uri, in every shape.
		{"redirect_uri with an added query", func(t *testing.T, e *env, _ string) {
			noRedirect(t, e, "web", "https://app.example/cb?next=https://evil.example")
		}},
		{"redirect_uri with a fragment", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "web", "https://app.example/cb#evil") }},
		{"redirect_uri path traversal", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "web", "https://app.example/cb/../../evil") }},
		{"redirect_uri with userinfo @", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "web", "https://app.example@evil.example/cb") }},
		{"redirect_uri scheme change", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "web", "http://app.example/cb") }},
		{"redirect_uri double encoded", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "web", "https%3A%2F%2Fapp.example%2Fcb") }},
		{"redirect_uri case changed host", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "web", "https://APP.example/cb") }},
		{"redirect_uri trailing slash", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "web", "https://app.example/cb/") }},
		{"redirect_uri of another client", func(t *testing.T, e *env, _ string) {
			e.webClient("other", func(c *clients.Client) { c.RedirectURIs = []string{"https://other.example/cb"} })
			noRedirect(t, e, "web", "https://other.example/cb")
		}},
		{"loopback port change for a web client", func(t *testing.T, e *env, _ string) {
			e.webClient("webloop", func(c *clients.Client) { c.RedirectURIs = []string{"http://127.0.0.1/cb"} })
			noRedirect(t, e, "webloop", "http://127.0.0.1:9999/cb")
		}},
		{"loopback look-alikes for a native client", func(t *testing.T, e *env, _ string) {
			e.webClient("app", func(c *clients.Client) {
				c.ApplicationType, c.Public, c.AuthMethods = clients.AppNative, true, nil
				c.RedirectURIs = []string{"http://127.0.0.1/cb"}
			})
			for _, u := range []string{"http://127.0.0.1.evil.example/cb", "http://127.0.0.1:80@evil.example/cb", "http://localhost:1234/cb", "http://127.0.0.1:1234/other",
				"http://127.0.0.1:0/cb", "http://127.0.0.1:99999/cb", "http://127.0.0.1:65536/cb", "http://127.0.0.1:/cb"} { // ports 1-65535 only (issue 16, item 8)
				noRedirect(t, e, "app", u)
			}
			_, ch := signettest.PKCE() // any port on the registered loopback URI is fine (RFC 8252 §7.3)
			p := e.browser().Authorize(authzQuery(ch, url.Values{"client_id": {"app"}, "redirect_uri": {"http://127.0.0.1:51234/cb"}}))
			if p.Status != 200 || !strings.Contains(p.Body, `id="password"`) {
				t.Fatalf("native loopback = %d", p.Status)
			}
		}},
		{"unknown client never redirects", func(t *testing.T, e *env, _ string) { noRedirect(t, e, "nobody", "https://app.example/cb") }},
		// Code injection and PKCE.
		{"code of client A redeemed by client B", func(t *testing.T, e *env, secret string) {
			secretB := e.webClient("b", nil)
			b := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			if tr := e.redeem("b", secretB, cb.Get("code"), "https://app.example/cb", v); tr.status != 400 || tr.str("error") != "invalid_grant" {
				t.Fatalf("B = %d %s", tr.status, tr.raw)
			}
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v); tr.status != 200 {
				t.Fatalf("A after B's attempt = %d %s (B must not be able to burn A's code)", tr.status, tr.raw)
			}
		}},
		{"code with another redirect_uri", func(t *testing.T, e *env, secret string) {
			e.webClient("web2", func(c *clients.Client) {
				c.RedirectURIs = []string{"https://app.example/cb", "https://app.example/cb2"}
			})
			b := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb2", v); tr.status != 400 {
				t.Fatalf("= %d %s", tr.status, tr.raw)
			}
		}},
		{"code without code_verifier", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", ""); tr.status != 400 || tr.str("error") != "invalid_grant" {
				t.Fatalf("= %d %s", tr.status, tr.raw)
			}
		}},
		{"code with a wrong code_verifier", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			other, _ := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", other); tr.status != 400 || tr.str("error") != "invalid_grant" {
				t.Fatalf("= %d %s", tr.status, tr.raw)
			}
		}},
		{"PKCE downgrade: challenge omitted", func(t *testing.T, e *env, secret string) {
			errorRedirect(t, e, e.browser().Authorize(authzQuery("", url.Values{"code_challenge": nil, "code_challenge_method": nil})), "invalid_request")
		}},
		{"PKCE downgrade: verifier without challenge", func(t *testing.T, e *env, _ string) {
			no := false
			s := e.webClient("nopkce", func(c *clients.Client) { c.RequirePKCE = &no })
			b := e.browser()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery("", url.Values{"client_id": {"nopkce"}, "code_challenge": nil, "code_challenge_method": nil})), "alice", alicePassword))
			v, _ := signettest.PKCE()
			if tr := e.redeem("nopkce", s, cb.Get("code"), "https://app.example/cb", v); tr.status != 400 {
				t.Fatalf("= %d %s", tr.status, tr.raw)
			}
		}},
		{"PKCE plain refused", func(t *testing.T, e *env, _ string) {
			v, _ := signettest.PKCE()
			errorRedirect(t, e, e.browser().Authorize(authzQuery(v, url.Values{"code_challenge_method": {"plain"}})), "invalid_request")
		}},
		{"50 concurrent redemptions of one code", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			var wg sync.WaitGroup
			statuses := make([]int, 50)
			start := make(chan struct{})
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					statuses[i] = e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v).status
				}()
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, s := range statuses {
				if s == 200 {
					ok++
				} else if s != 400 {
					t.Errorf("status %d", s)
				}
			}
			if ok != 1 {
				t.Fatalf("%d of 50 redemptions succeeded, want exactly 1", ok)
			}
		}},
		{"code redeemed after its session logged out", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			if p := b.Submit(b.Get(e.issuer+"/oauth2/logout"), url.Values{"decision": {"logout"}}); !strings.Contains(p.Body, "You are signed out") {
				t.Fatalf("logout: %d", p.Status)
			}
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v); tr.status != 400 {
				t.Fatalf("= %d %s", tr.status, tr.raw)
			}
		}},
		{"force logout then login in the same second", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			e.flow(b, "web", secret, nil)
			if _, err := e.srv.Logout(context.Background(), e.alice.ID); err != nil {
				t.Fatal(err)
			}
			e.flow(b, "web", secret, nil) // the clock has not moved: a new login still works
		}},
		{"expired code", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword))
			e.clock.Add(61 * time.Second)
			if tr := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v); tr.status != 400 {
				t.Fatalf("= %d %s", tr.status, tr.raw)
			}
		}},
		// CSRF on the forms.
		{"login form without the browser cookie", func(t *testing.T, e *env, _ string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			p := b.Authorize(authzQuery(ch, nil))
			b.Client.Jar = e.browser().Client.Jar // the cookies of another browser
			if p2 := b.login(p, "alice", alicePassword); p2.Status != http.StatusForbidden || p2.Location != nil {
				t.Fatalf("= %d %v", p2.Status, p2.Location)
			}
		}},
		{"login form with a wrong CSRF token", func(t *testing.T, e *env, _ string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			p := b.Authorize(authzQuery(ch, nil))
			if p2 := b.Submit(p, url.Values{"csrf": {"x" + strings.Repeat("A", 42)}, "username": {"alice"}, "password": {alicePassword}}); p2.Status != http.StatusForbidden {
				t.Fatalf("= %d", p2.Status)
			}
		}},
		{"login CSRF: the attacker's form posted from the victim's browser", func(t *testing.T, e *env, _ string) {
			attacker, victim := e.browser(), e.browser()
			_, ch := signettest.PKCE()
			p := attacker.Authorize(authzQuery(ch, nil))
			victim.Authorize(authzQuery(ch, nil)) // the victim has a browser cookie of its own
			if p2 := victim.login(p, "alice", alicePassword); p2.Status != http.StatusForbidden {
				t.Fatalf("= %d", p2.Status)
			}
		}},
		{"consent form with another transaction's token", func(t *testing.T, e *env, _ string) {
			e.webClient("third", func(c *clients.Client) { c.FirstParty = false })
			b := e.browser()
			_, ch := signettest.PKCE()
			p := b.login(b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}})), "alice", alicePassword)
			p2 := b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}}))
			_, other := signettest.FormOf(t, p2)
			if p3 := b.Submit(p, url.Values{"csrf": {other.Get("csrf")}, "decision": {"allow"}}); p3.Status != http.StatusForbidden {
				t.Fatalf("= %d", p3.Status)
			}
		}},
		// Sessions.
		{"session fixation", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			u, _ := url.Parse(e.issuer)
			planted := strings.Repeat("A", 43)
			b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: login.SessionCookie, Value: planted, Path: "/"}})
			e.flow(b, "web", secret, nil)
			for _, c := range b.Client.Jar.Cookies(u) {
				if c.Name == login.SessionCookie && c.Value == planted {
					t.Fatal("the planted session id survived the login")
				}
			}
		}},
		{"a new session id on every login", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			u, _ := url.Parse(e.issuer)
			cookie := func() string {
				for _, c := range b.Client.Jar.Cookies(u) {
					if c.Name == login.SessionCookie {
						return c.Value
					}
				}
				return ""
			}
			e.flow(b, "web", secret, nil)
			first := cookie()
			e.flow(b, "web", secret, url.Values{"prompt": {"login"}})
			if cookie() == first || first == "" {
				t.Fatal("session id unchanged by a new login")
			}
			old := e.browser()
			old.Client.Jar.SetCookies(u, []*http.Cookie{{Name: login.SessionCookie, Value: first, Path: "/"}})
			_, ch := signettest.PKCE()
			errorRedirect(t, e, old.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})), "login_required")
		}},
		{"session cookie attributes", func(t *testing.T, e *env, _ string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			p := b.login(b.Authorize(authzQuery(ch, nil)), "alice", alicePassword)
			var sc string
			for _, v := range p.Header.Values("Set-Cookie") {
				if strings.HasPrefix(v, login.SessionCookie+"=") {
					sc = v
				}
			}
			for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
				if !strings.Contains(sc, want) {
					t.Errorf("session cookie %q lacks %s", sc, want)
				}
			}
		}},
		{"clickjacking and caching headers on every page", func(t *testing.T, e *env, _ string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			pages := []page{b.Authorize(authzQuery(ch, nil)), b.Authorize(authzQuery(ch, url.Values{"redirect_uri": {"https://evil.example"}})), b.Get(e.issuer + "/oauth2/logout")}
			for _, p := range pages {
				if p.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(p.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
					p.Header.Get("Cache-Control") != "no-store" || p.Header.Get("Referrer-Policy") != "no-referrer" {
					t.Errorf("page %d headers: %v", p.Status, p.Header)
				}
				if strings.Contains(p.Body, "<script") || strings.Contains(p.Body, "style=") {
					t.Errorf("inline script or style on a page")
				}
			}
		}},
		{"login timing: unknown user and wrong password alike", func(t *testing.T, e *env, _ string) {
			e = newEnv(t, envOptions{realHash: true})
			e.webClient("web", nil)
			b := e.browser()
			_, ch := signettest.PKCE()
			p := b.Authorize(authzQuery(ch, nil))
			// Interleaved, so that load from elsewhere on the machine falls
			// on both alike.
			var unknownD, wrongD []time.Duration
			var b1, b2 string
			for range 9 {
				start := time.Now()
				b1 = b.login(p, "nobody-here", "wrong password!").Body
				unknownD = append(unknownD, time.Since(start))
				start = time.Now()
				b2 = b.login(p, "alice", "wrong password!").Body
				wrongD = append(wrongD, time.Since(start))
			}
			median := func(ds []time.Duration) time.Duration {
				sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
				return ds[len(ds)/2]
			}
			unknown, wrong := median(unknownD), median(wrongD)
			if !strings.Contains(b1, "The username or password is incorrect.") || !strings.Contains(b2, "The username or password is incorrect.") {
				t.Fatal("different messages for an unknown user and a wrong password")
			}
			if r := float64(unknown) / float64(wrong); r < 0.5 || r > 2 {
				t.Fatalf("median unknown user %s vs wrong password %s", unknown, wrong)
			}
		}},
		{"lockout shows when to try again", func(t *testing.T, e *env, _ string) {
			e = newEnv(t, envOptions{login: authority.LoginRateLimit{PerUserIP: 3, PerIP: 100, PerUser: 100, Window: time.Minute}})
			e.webClient("web", nil)
			b := e.browser()
			_, ch := signettest.PKCE()
			p := b.Authorize(authzQuery(ch, nil))
			for range 3 {
				b.login(p, "alice", "wrong password!")
			}
			r := b.login(p, "alice", alicePassword)
			if r.Status != http.StatusTooManyRequests || !strings.Contains(r.Body, "Try again in") || r.Header.Get("Retry-After") == "" {
				t.Fatalf("locked = %d:\n%s", r.Status, r.Body)
			}
		}},
		{"forged id_token_hint", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			kid := signettest.Header(t, tr.str("id_token"))["kid"].(string)
			c := signettest.Claims(t, tr.str("id_token"))
			none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + strings.Split(tr.str("id_token"), ".")[1] + "."
			other := map[string]any{}
			for k, v := range c {
				other[k] = v
			}
			other["iss"] = "https://evil.example"
			for name, hint := range map[string]string{"alg none": none, "foreign key": forge(t, kid, c)} {
				_, ch := signettest.PKCE()
				p := b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}, "id_token_hint": {hint}}))
				if p.Location == nil || p.Location.Query().Get("code") != "" || p.Location.Query().Get("error") != "invalid_request" {
					t.Errorf("%s: %d %v", name, p.Status, p.Location)
				}
				lp := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://app.example/bye"}}.Encode())
				if lp.Location != nil {
					t.Errorf("%s: logout redirected to %v", name, lp.Location)
				}
			}
		}},
		// Issue 16, item 9: the login page finds users through the same
		// RFC 8265 normaliser as every other place.
		{"username forms at the login page", func(t *testing.T, e *env, secret string) {
			for _, name := range []string{"alıce", "аlice", "alice​"} {
				b := e.browser()
				_, ch := signettest.PKCE()
				if p := b.login(b.Authorize(authzQuery(ch, nil)), name, alicePassword); !strings.Contains(p.Body, "The username or password is incorrect.") {
					t.Errorf("login as %q = %d, want refused", name, p.Status)
				}
			}
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil) // logs in as "alice"
			b2 := e.browser()
			v, ch := signettest.PKCE()
			cb := codeFrom(t, b2.login(b2.Authorize(authzQuery(ch, nil)), "ＡＬＩＣＥ", alicePassword))
			tr2 := e.redeem("web", secret, cb.Get("code"), "https://app.example/cb", v)
			if sub := signettest.Claims(t, tr2.str("id_token"))["sub"]; sub != signettest.Claims(t, tr.str("id_token"))["sub"] || sub != e.alice.ID {
				t.Errorf("login as ＡＬＩＣＥ: sub %v, want alice %s", sub, e.alice.ID)
			}
		}},
		// Issue 16, item 7: one strict JWS parser for every token Signet reads.
		{"id_token_hint in another serialization or spelling", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			idt := tr.str("id_token")
			p := strings.Split(idt, ".")
			pad := func(s string) string { return s + strings.Repeat("=", (4-len(s)%4)%4) }
			padded := pad(p[0]) + "." + pad(p[1]) + "." + pad(p[2])
			if padded == idt {
				padded += "="
			}
			for name, hint := range map[string]string{
				"flattened JSON": `{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`,
				"general JSON":   `{"payload":"` + p[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`,
				"padded base64":  padded,
				"four parts":     idt + ".",
				"spaces":         " " + idt,
			} {
				_, ch := signettest.PKCE()
				ap := b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}, "id_token_hint": {hint}}))
				if ap.Location == nil || ap.Location.Query().Get("error") != "invalid_request" {
					t.Errorf("%s: authorize = %d %v, want invalid_request", name, ap.Status, ap.Location)
				}
				lp := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://app.example/bye"}}.Encode())
				if lp.Location != nil {
					t.Errorf("%s: logout redirected to %v", name, lp.Location)
				}
			}
			// The compact token itself is a good hint.
			lp := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://app.example/bye"}}.Encode())
			if lp.Location == nil || lp.Location.Host != "app.example" {
				t.Errorf("genuine hint: logout = %d %v, want the redirect", lp.Status, lp.Location)
			}
		}},
		{"id_token_hint of a deleted client for the one created again", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			tr, _ := e.flow(b, "web", secret, nil)
			hint := tr.str("id_token")
			if err := e.srv.Clients().Delete(t.Context(), "web"); err != nil {
				t.Fatal(err)
			}
			e.webClient("web", func(c *clients.Client) { c.PostLogoutRedirectURIs = []string{"https://new-owner.example/bye"} })
			lp := b.Get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://new-owner.example/bye"}}.Encode())
			if lp.Location != nil {
				t.Errorf("logout with the old client's ID token redirected to %v", lp.Location)
			}
			_, ch := signettest.PKCE()
			ap := b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}, "id_token_hint": {hint}}))
			if ap.Location == nil || ap.Location.Query().Get("error") != "invalid_request" {
				t.Errorf("authorize with the old client's ID token = %d %v, want invalid_request", ap.Status, ap.Location)
			}
		}},
		{"mix-up: iss on every authorization response", func(t *testing.T, e *env, secret string) {
			_, cb := e.flow(e.browser(), "web", secret, nil)
			_, ch := signettest.PKCE()
			p := e.browser().Authorize(authzQuery(ch, url.Values{"prompt": {"none"}}))
			if cb.Get("iss") != e.issuer || p.Location.Query().Get("iss") != e.issuer {
				t.Fatalf("iss = %q, %q", cb.Get("iss"), p.Location.Query().Get("iss"))
			}
		}},
		{"parallel logins in two tabs", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			tab1 := b.Authorize(authzQuery(ch, nil))
			tab2 := b.Authorize(authzQuery(ch, url.Values{"state": {"tab2"}}))
			codeFrom(t, b.login(tab2, "alice", alicePassword))
			codeFrom(t, b.login(tab1, "alice", alicePassword))
		}},
		{"back button resubmission", func(t *testing.T, e *env, _ string) {
			b := e.browser()
			_, ch := signettest.PKCE()
			p := b.Authorize(authzQuery(ch, nil))
			codeFrom(t, b.login(p, "alice", alicePassword))
			again := b.login(p, "alice", alicePassword)
			if again.Location != nil || !strings.Contains(again.Body, "This page has expired") || !strings.Contains(again.Body, "Start again") {
				t.Fatalf("resubmission = %d:\n%s", again.Status, again.Body)
			}
		}},
		{"prompt=none without consent", func(t *testing.T, e *env, secret string) {
			e.webClient("third", func(c *clients.Client) { c.FirstParty = false })
			b := e.browser()
			e.flow(b, "web", secret, nil)
			_, ch := signettest.PKCE()
			errorRedirect(t, e, b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}, "prompt": {"none"}})), "consent_required")
		}},
		{"force logout ends the SSO session", func(t *testing.T, e *env, secret string) {
			b := e.browser()
			e.flow(b, "web", secret, nil)
			if _, err := e.srv.Logout(context.Background(), e.alice.ID); err != nil {
				t.Fatal(err)
			}
			_, ch := signettest.PKCE()
			errorRedirect(t, e, b.Authorize(authzQuery(ch, url.Values{"prompt": {"none"}})), "login_required")
		}},
		{"consent withdrawal revokes the client's refresh tokens", func(t *testing.T, e *env, _ string) {
			s3 := e.webClient("third", func(c *clients.Client) { c.FirstParty = false })
			b := e.browser()
			v, ch := signettest.PKCE()
			p := b.login(b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}, "scope": {"openid offline_access"}})), "alice", alicePassword)
			cb := codeFrom(t, b.Submit(p, url.Values{"decision": {"allow"}}))
			tr := e.redeem("third", s3, cb.Get("code"), "https://app.example/cb", v)
			if tr.status != 200 {
				t.Fatal(tr.raw)
			}
			found, n, err := authority.WithdrawConsent(context.Background(), e.store, e.alice.ID, "third", e.clock.Now())
			if err != nil || !found || n != 1 {
				t.Fatalf("withdraw = %v %d %v", found, n, err)
			}
			if r := e.token("third", s3, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}); r.status != 400 {
				t.Fatalf("refresh after withdrawal = %d", r.status)
			}
			if p := b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}})); !strings.Contains(p.Body, `value="allow"`) {
				t.Fatal("consent not asked again after withdrawal")
			}
		}},
		{"public client cannot skip PKCE or use a secret", func(t *testing.T, e *env, _ string) {
			e.webClient("spa", func(c *clients.Client) { c.Public, c.AuthMethods = true, nil })
			no := false
			if _, err := e.srv.Clients().Update(context.Background(), "spa", clients.Patch{RequirePKCE: &no}); err == nil {
				t.Fatal("a public client accepted require_pkce false")
			}
			errorRedirect(t, e, e.browser().Authorize(authzQuery("", url.Values{"client_id": {"spa"}, "code_challenge": nil, "code_challenge_method": nil})), "invalid_request")
		}},
	}
	if len(rows) < 25 {
		t.Fatalf("%d rows", len(rows))
	}
	names := map[string]bool{}
	for _, row := range rows {
		if names[row.name] {
			t.Fatalf("duplicate row %q", row.name)
		}
		names[row.name] = true
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			secret := e.webClient("web", nil)
			row.run(t, e, secret)
		})
	}
}
