//go:build browser

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/signet-auth/signet/config"
)

// corsPage is a page on another origin that calls Signet the way a client
// running in a browser tab does (an MCP client such as an inspector, a
// SPA with DPoP): discovery with the MCP SDK's protocol header, a dynamic
// registration with a JSON body, the token endpoint with a DPoP header,
// userinfo with a bearer token. Each of these is preflighted; the page
// records what it could read, or the error fetch threw.
const corsPage = `<!doctype html><title>cors</title><script>
async function run(issuer) {
  const out = {};
  const step = async (name, f) => { try { out[name] = await f(); } catch (e) { out[name] = 'fetch failed: ' + e; } };
  await step('discovery', async () => {
    const r = await fetch(issuer + '/.well-known/oauth-authorization-server', {headers: {'MCP-Protocol-Version': '2025-11-25'}});
    return (await r.json()).registration_endpoint;
  });
  let client = '';
  await step('register', async () => {
    const r = await fetch(issuer + '/oauth2/register', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({client_name: 'Page Tool', redirect_uris: [location.origin + '/cb'], token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'], response_types: ['code']})});
    const j = await r.json();
    client = j.client_id;
    return r.status + ' ' + (j.client_id ? 'client_id' : JSON.stringify(j));
  });
  await step('token', async () => {
    const r = await fetch(issuer + '/oauth2/token', {method: 'POST', headers: {'DPoP': 'not-a-proof', 'Content-Type': 'application/x-www-form-urlencoded'},
      body: new URLSearchParams({grant_type: 'authorization_code', client_id: client, code: 'x', redirect_uri: location.origin + '/cb', code_verifier: 'v'.repeat(43)})});
    return r.status + ' ' + (await r.json()).error;
  });
  await step('userinfo', async () => {
    const r = await fetch(issuer + '/oauth2/userinfo', {headers: {'Authorization': 'Bearer not-a-token'}});
    return r.status + ' ' + (r.headers.get('WWW-Authenticate') ? 'WWW-Authenticate' : 'no header');
  });
  return JSON.stringify(out);
}
</script>`

// TestBrowserCORS: headless Chromium, on a page of another origin, calls
// discovery, registration, the token endpoint with DPoP and userinfo of a
// real signet serve, and reads every answer. Chromium enforces CORS, so
// this is the check a Go client cannot make: before, the preflights were
// answered 405 and every call but discovery failed in the browser.
func TestBrowserCORS(t *testing.T) {
	c := testConfig(t, func(c *config.Config) {
		c.DynamicClients.Registration.Enabled = true
		c.DynamicClients.Audiences = []string{"https://mcp.example/mcp"}
	})
	m, logs := startMain(t, c, time.Now)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(corsPage))
	}))
	t.Cleanup(page.Close)

	b := newChromium(t, 480, 760, logs.String)
	b.step("open the page", chromedp.Navigate(page.URL))
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string]("run("+jsString(m.URL())+")", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run the page's calls: %v\nsignet logs:\n%s", err, logs)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("page result %q: %v", raw, err)
	}
	want := map[string]string{
		"discovery": m.Config.Issuer + "/oauth2/register",
		"register":  "201 client_id",
		"token":     "400 invalid_dpop_proof",
		"userinfo":  "401 WWW-Authenticate",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s from a page of another origin: got %q, want %q", k, got[k], w)
		}
	}
	if t.Failed() {
		t.Logf("signet logs:\n%s", logs)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
