package login_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
)

// RFC 8707 resource indicators at every endpoint that takes them: the
// authorization endpoint, the code, refresh and device grants.

const (
	resA    = "https://mcp.example.com/mcp"
	resB    = "https://api.example.com/v1?tenant=blue" // a query is allowed
	resC    = "https://reports.example.com"            // the client's, never authorized below
	resEvil = "https://evil.example"
)

// resourceClient registers a first-party web client whose audiences are
// a logical name (its default) and three resource URIs.
func (e *env) resourceClient(id string, mod func(*clients.Client)) string {
	return e.webClient(id, func(c *clients.Client) {
		c.Audiences, c.DefaultAudience = []string{"api", resA, resB, resC}, "api"
		if mod != nil {
			mod(c)
		}
	})
}

// resourceCode runs an authorization request naming resources (alice
// signs in when b has no session) and returns the code and its verifier.
func resourceCode(t *testing.T, b *browser, id string, resources ...string) (string, string) {
	t.Helper()
	v, ch := signettest.PKCE()
	p := b.Authorize(authzQuery(ch, url.Values{"client_id": {id}, "resource": resources}))
	if p.Location == nil && strings.Contains(p.Body, `name="password"`) {
		p = b.login(p, "alice", alicePassword)
	}
	return codeFrom(t, p).Get("code"), v
}

// redeemFor redeems code with extra token request parameters.
func (e *env) redeemFor(id, secret, code, verifier string, extra url.Values) tokenResponse {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier}}
	for k, v := range extra {
		f[k] = v
	}
	return e.token(id, secret, f)
}

// audOf is the access token's aud as a list.
func audOf(t *testing.T, tr tokenResponse) []string {
	t.Helper()
	switch a := signettest.Claims(t, tr.str("access_token"))["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			out = append(out, v.(string))
		}
		return out
	}
	t.Fatalf("no aud in %s", tr.raw)
	return nil
}

// TestResource_AuthorizationEndpoint: each resource must be an absolute
// URI without fragment that the client may have as an audience, else the
// error goes back to the redirect URI as invalid_target (with state and
// iss); the code carries what was authorized into the access token.
func TestResource_AuthorizationEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.resourceClient("web", nil)
	b := e.browser()
	rows := []struct {
		name      string
		resources []string
		wantErr   string
		wantAud   []string
	}{
		{"allowed", []string{resA}, "", []string{resA}},
		{"two allowed", []string{resA, resB}, "", []string{resA, resB}},
		{"repeated", []string{resA, resA}, "", []string{resA}},
		{"none: the default audience", nil, "", []string{"api"}},
		{"empty value is absent", []string{""}, "", []string{"api"}},
		{"not allowed", []string{resEvil}, "invalid_target", nil},
		{"one of two not allowed", []string{resA, resEvil}, "invalid_target", nil},
		{"relative URI", []string{"/mcp"}, "invalid_target", nil},
		{"no scheme", []string{"mcp.example.com/mcp"}, "invalid_target", nil},
		{"the client's logical audience is not a URI", []string{"api"}, "invalid_target", nil},
		{"with fragment", []string{resA + "#frag"}, "invalid_target", nil},
		{"with empty fragment", []string{resA + "#"}, "invalid_target", nil},
		{"https without host", []string{"https:/mcp"}, "invalid_target", nil},
		{"space", []string{"https://mcp.example.com/a b"}, "invalid_target", nil},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if row.wantErr == "" {
				code, v := resourceCode(t, b, "web", row.resources...)
				tr := e.redeemFor("web", sec, code, v, nil)
				if tr.status != http.StatusOK {
					t.Fatalf("redeem = %d %s", tr.status, tr.raw)
				}
				if got := audOf(t, tr); !slices.Equal(got, row.wantAud) {
					t.Fatalf("aud = %v, want %v", got, row.wantAud)
				}
				return
			}
			_, ch := signettest.PKCE()
			p := b.Authorize(authzQuery(ch, url.Values{"client_id": {"web"}, "resource": row.resources}))
			if p.Location == nil || p.Location.Host != "app.example" {
				t.Fatalf("status %d location %v, want a redirect to the client:\n%s", p.Status, p.Location, p.Body)
			}
			q := p.Location.Query()
			if q.Get("error") != row.wantErr || q.Get("state") != "s1" || q.Get("iss") != e.issuer || q.Get("code") != "" {
				t.Fatalf("redirect %s, want error=%s with state and iss", p.Location, row.wantErr)
			}
		})
	}
	// Until the redirect URI is known good nothing goes to it (RFC 6749
	// §4.1.2.1): a bad resource with an unregistered redirect URI is a page.
	_, ch := signettest.PKCE()
	p := b.Authorize(authzQuery(ch, url.Values{"client_id": {"web"}, "redirect_uri": {"https://evil.example/cb"}, "resource": {"/mcp"}}))
	if p.Status != http.StatusBadRequest || p.Location != nil {
		t.Fatalf("bad redirect URI and bad resource: status %d location %v, want an error page", p.Status, p.Location)
	}
}

// TestResource_CodeGrant: resource at the token request may only narrow
// what the authorization request authorized (RFC 8707 §2.2); none means
// all of it; the client's audiences are checked again at redemption.
func TestResource_CodeGrant(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.browser()
	rows := []struct {
		name       string
		authorized []string
		ask        url.Values
		lose       string // an audience the client loses before redemption
		wantErr    string
		wantAud    []string
	}{
		{"narrowed to one", []string{resA, resB}, url.Values{"resource": {resB}}, "", "", []string{resB}},
		{"none: all authorized", []string{resA, resB}, nil, "", "", []string{resA, resB}},
		{"all named", []string{resA, resB}, url.Values{"resource": {resA, resB}}, "", "", []string{resA, resB}},
		{"audience parameter narrows too", []string{resA, resB}, url.Values{"audience": {resA}}, "", "", []string{resA}},
		{"not authorized (the client's, not asked at authorization)", []string{resA}, url.Values{"resource": {resC}}, "", "invalid_target", nil},
		{"none authorized, a resource asked", nil, url.Values{"resource": {resA}}, "", "invalid_target", nil},
		{"never the client's", []string{resA}, url.Values{"resource": {resEvil}}, "", "invalid_target", nil},
		{"relative URI", []string{resA}, url.Values{"resource": {"/mcp"}}, "", "invalid_target", nil},
		{"with fragment", []string{resA}, url.Values{"resource": {resA + "#x"}}, "", "invalid_target", nil},
		{"resource and audience together", []string{resA}, url.Values{"resource": {resA}, "audience": {resA}}, "", "invalid_request", nil},
		{"client lost one: dropped", []string{resA, resB}, nil, resB, "", []string{resA}},
		{"client lost one, asked by name", []string{resA, resB}, url.Values{"resource": {resB}}, resB, "invalid_target", nil},
		{"client lost all it authorized", []string{resB}, nil, resB, "invalid_target", nil},
	}
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			id := "c" + string(rune('a'+i))
			sec := e.resourceClient(id, nil)
			code, v := resourceCode(t, b, id, row.authorized...)
			if row.lose != "" {
				left := slices.DeleteFunc([]string{"api", resA, resB, resC}, func(a string) bool { return a == row.lose })
				if _, err := e.srv.Clients().Update(context.Background(), id, clients.Patch{Audiences: &left}); err != nil {
					t.Fatal(err)
				}
			}
			tr := e.redeemFor(id, sec, code, v, row.ask)
			if row.wantErr != "" {
				wantError(t, "redeem", tr, row.wantErr)
				// A well-formed resource not granted is refused after the
				// code was read, which spends it, as every refusal then
				// does; a malformed request is refused before, as one
				// without a code would be.
				again := e.redeemFor(id, sec, code, v, nil)
				if malformed := row.wantErr == "invalid_request" || strings.HasPrefix(row.name, "relative") || strings.HasPrefix(row.name, "with fragment"); malformed {
					if again.status != http.StatusOK {
						t.Fatalf("redeem after a malformed request = %d %s, want the code still usable", again.status, again.raw)
					}
				} else {
					wantError(t, "redeem again", again, "invalid_grant")
				}
				return
			}
			if tr.status != http.StatusOK {
				t.Fatalf("redeem = %d %s", tr.status, tr.raw)
			}
			if got := audOf(t, tr); !slices.Equal(got, row.wantAud) {
				t.Fatalf("aud = %v, want %v", got, row.wantAud)
			}
		})
	}
}

// TestResource_Refresh: the family remembers every resource the code
// authorized; a refresh with resource narrows to them, never widens, and
// is checked against the client's audiences as they are now.
func TestResource_Refresh(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.browser()
	rows := []struct {
		name    string
		ask     url.Values
		lose    string
		wantErr string
		wantAud []string
	}{
		{"none: every resource of the family", nil, "", "", []string{resA, resB}},
		{"downscoped to one", url.Values{"resource": {resB}}, "", "", []string{resB}},
		{"widened to the client's other resource", url.Values{"resource": {resC}}, "", "invalid_target", nil},
		{"widened to the default audience", url.Values{"audience": {"api"}}, "", "invalid_target", nil},
		{"never the client's", url.Values{"resource": {resEvil}}, "", "invalid_target", nil},
		{"relative URI", url.Values{"resource": {"mcp"}}, "", "invalid_target", nil},
		{"with fragment", url.Values{"resource": {resB + "#x"}}, "", "invalid_target", nil},
		{"resource and audience together", url.Values{"resource": {resA}, "audience": {resA}}, "", "invalid_request", nil},
		{"client lost one: dropped", nil, resB, "", []string{resA}},
		{"client lost the one asked for", url.Values{"resource": {resB}}, resB, "invalid_target", nil},
	}
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			id := "r" + string(rune('a'+i))
			sec := e.resourceClient(id, nil)
			code, v := resourceCode(t, b, id, resA, resB)
			tr := e.redeemFor(id, sec, code, v, url.Values{"resource": {resA}})
			if tr.status != http.StatusOK || tr.str("refresh_token") == "" {
				t.Fatalf("redeem = %d %s, want tokens with a refresh token", tr.status, tr.raw)
			}
			if got := audOf(t, tr); !slices.Equal(got, []string{resA}) {
				t.Fatalf("first access token aud = %v, want %s", got, resA)
			}
			if row.lose != "" {
				left := slices.DeleteFunc([]string{"api", resA, resB, resC}, func(a string) bool { return a == row.lose })
				if _, err := e.srv.Clients().Update(context.Background(), id, clients.Patch{Audiences: &left}); err != nil {
					t.Fatal(err)
				}
			}
			f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}}
			for k, v := range row.ask {
				f[k] = v
			}
			rt := e.token(id, sec, f)
			if row.wantErr != "" {
				wantError(t, "refresh", rt, row.wantErr)
				return
			}
			if rt.status != http.StatusOK {
				t.Fatalf("refresh = %d %s", rt.status, rt.raw)
			}
			if got := audOf(t, rt); !slices.Equal(got, row.wantAud) {
				t.Fatalf("aud = %v, want %v", got, row.wantAud)
			}
			// Downscoping one refresh does not shrink the family.
			again := e.token(id, sec, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.str("refresh_token")}})
			if again.status != http.StatusOK {
				t.Fatalf("second refresh = %d %s", again.status, again.raw)
			}
			want := []string{resA, resB}
			if row.lose != "" {
				want = []string{resA}
			}
			if got := audOf(t, again); !slices.Equal(got, want) {
				t.Fatalf("second refresh aud = %v, want %v", got, want)
			}
		})
	}
}

// TestResource_Device: the device authorization endpoint takes resource
// as the authorization endpoint does; the device code remembers it and
// the poll may narrow it.
func TestResource_Device(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deviceClient("tv", func(c *clients.Client) { c.Audiences, c.DefaultAudience = []string{"api", resA, resB}, "api" })
	for _, row := range []struct {
		name string
		form url.Values
		code string
	}{
		{"not allowed", url.Values{"resource": {resEvil}}, "invalid_target"},
		{"relative URI", url.Values{"resource": {"/mcp"}}, "invalid_target"},
		{"with fragment", url.Values{"resource": {resA + "#x"}}, "invalid_target"},
		{"resource and audience together", url.Values{"resource": {resA}, "audience": {resA}}, "invalid_request"},
	} {
		if status, _, body := e.startDevice("tv", "", row.form); status != http.StatusBadRequest || body["error"] != row.code {
			t.Errorf("%s: device authorization = %d %v, want 400 %s", row.name, status, body, row.code)
		}
	}
	b := e.browser()
	device := func(poll url.Values, resources ...string) tokenResponse {
		t.Helper()
		status, da, body := e.startDevice("tv", "", url.Values{"scope": {"openid"}, "resource": resources})
		if status != http.StatusOK {
			t.Fatalf("device authorization = %d %v", status, body)
		}
		b.approve(da.UserCode, "allow")
		f := url.Values{"grant_type": {clients.GrantDeviceCode}, "device_code": {da.DeviceCode}}
		for k, v := range poll {
			f[k] = v
		}
		return e.token("tv", "", f)
	}
	if tr := device(nil, resA, resB); tr.status != http.StatusOK || !slices.Equal(audOf(t, tr), []string{resA, resB}) {
		t.Fatalf("device flow with two resources = %d %s", tr.status, tr.raw)
	}
	if tr := device(url.Values{"resource": {resB}}, resA, resB); tr.status != http.StatusOK || !slices.Equal(audOf(t, tr), []string{resB}) {
		t.Fatalf("poll narrowing to %s = %d %s", resB, tr.status, tr.raw)
	}
	wantError(t, "poll widening", device(url.Values{"resource": {resB}}, resA), "invalid_target")
	if tr := device(nil); tr.status != http.StatusOK || !slices.Equal(audOf(t, tr), []string{"api"}) {
		t.Fatalf("device flow without resource = %d %s, want the default audience", tr.status, tr.raw)
	}
}

// TestResource_OAuth2Library: golang.org/x/oauth2, unmodified, sends
// resource on the authorization and code requests with SetAuthURLParam;
// its token source refreshes (without resource) to the family's resources.
func TestResource_OAuth2Library(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.resourceClient("lib", nil)
	conf := &oauth2.Config{ClientID: "lib", ClientSecret: sec, RedirectURL: "https://app.example/cb", Scopes: []string{"openid", "read"},
		Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/oauth2/authorize", TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	u := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resA))
	b := e.browser()
	p := b.Get(u)
	if p.Location == nil {
		p = b.login(p, "alice", alicePassword)
	}
	cb := codeFrom(t, p)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.http.Client())
	tok, err := conf.Exchange(ctx, cb.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resA))
	if err != nil {
		t.Fatal(err)
	}
	at := tokenResponse{body: map[string]any{"access_token": tok.AccessToken}}
	if got := audOf(t, at); !slices.Equal(got, []string{resA}) || tok.RefreshToken == "" {
		t.Fatalf("aud = %v refresh %q, want %s and a refresh token", got, tok.RefreshToken, resA)
	}
	// A resource not authorized is refused with invalid_target, which
	// the library reports as a RetrieveError.
	cb2 := codeFrom(t, b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resA))))
	_, err = conf.Exchange(ctx, cb2.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resB))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_target" {
		t.Fatalf("exchange for a resource not authorized = %v, want invalid_target", err)
	}
	tok.Expiry = tok.Expiry.Add(-24 * 3600e9) // expired: the token source refreshes
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if got := audOf(t, tokenResponse{body: map[string]any{"access_token": next.AccessToken}}); !slices.Equal(got, []string{resA}) || next.AccessToken == tok.AccessToken {
		t.Fatalf("refreshed aud = %v, want %s", got, resA)
	}
}

// TestResource_MCPShapedClient is what the MCP TypeScript SDK's client
// does (issue 20): a public third-party client with PKCE sends no scope
// (the client's default scopes apply, RFC 6749 §3.3) and no state, sends
// resource verbatim on the authorization, code and refresh requests, never
// asks for offline_access, and expects a refresh token from its
// registered refresh_token grant: it gets one once the user allowed the
// consent page, which says it keeps access.
func TestResource_MCPShapedClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.webClient("mcp", func(c *clients.Client) {
		c.FirstParty, c.Public, c.AuthMethods, c.ApplicationType = false, true, nil, clients.AppNative
		c.RedirectURIs = []string{"http://127.0.0.1/callback"}
		c.Scopes, c.DefaultScopes = []string{"read", "openid"}, []string{"read"}
		c.Audiences, c.DefaultAudience = []string{resA}, resA
	})
	b := e.browser()
	v, ch := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {"mcp"}, "redirect_uri": {"http://127.0.0.1:4711/callback"},
		"code_challenge": {ch}, "code_challenge_method": {"S256"}, "resource": {resA}}
	p := b.login(b.Authorize(q), "alice", alicePassword)
	if !strings.Contains(p.Body, `value="allow"`) || !strings.Contains(p.Body, keepsAccessText) {
		t.Fatalf("no consent page saying the client keeps access:\n%s", p.Body)
	}
	cb := codeFrom(t, b.Submit(p, url.Values{"decision": {"allow"}}))
	if cb.Has("state") {
		t.Fatalf("state %q sent back when none was sent", cb.Get("state"))
	}
	tr := e.token("mcp", "", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")},
		"redirect_uri": {"http://127.0.0.1:4711/callback"}, "code_verifier": {v}, "resource": {resA}})
	if tr.status != http.StatusOK || tr.str("refresh_token") == "" || tr.str("scope") != "read" {
		t.Fatalf("redeem = %d %s, want scope read and a refresh token", tr.status, tr.raw)
	}
	if got := audOf(t, tr); !slices.Equal(got, []string{resA}) {
		t.Fatalf("aud = %v, want %s", got, resA)
	}
	rt := e.token("mcp", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}, "resource": {resA}})
	if rt.status != http.StatusOK || rt.str("refresh_token") == "" || !slices.Equal(audOf(t, rt), []string{resA}) {
		t.Fatalf("refresh with resource = %d %s", rt.status, rt.raw)
	}
}
