package registration_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/registration"
	"github.com/signet-auth/signet/storage"
)

// TestMetadataAdvertises: the discovery document names the registration
// endpoint and says metadata documents are supported; off by default.
func TestMetadataAdvertises(t *testing.T) {
	e := newEnv(t, envOptions{})
	md := e.call(http.MethodGet, "/.well-known/oauth-authorization-server", "", nil)
	if md.str("registration_endpoint") != e.issuer+registration.Path || md.body["client_id_metadata_document_supported"] != true {
		t.Fatalf("metadata = %s", md.raw)
	}
	off := newEnv(t, envOptions{policy: registration.Policy{Audiences: []string{resource}}})
	md = off.call(http.MethodGet, "/.well-known/oauth-authorization-server", "", nil)
	if _, ok := md.body["registration_endpoint"]; ok || md.body["client_id_metadata_document_supported"] != nil {
		t.Fatalf("off, metadata = %s", md.raw)
	}
	if a := off.register(publicClient()); a.status != http.StatusNotFound && a.status != http.StatusMethodNotAllowed {
		t.Fatalf("registration off: %d %s", a.status, a.raw)
	}
}

// TestRegisterReadUpdateDelete is RFC 7591 registration and RFC 7592
// read, update and delete through the registration access token.
func TestRegisterReadUpdateDelete(t *testing.T) {
	e := newEnv(t, envOptions{})
	md := publicClient()
	md["scope"] = "mcp:tools openid signet:admin unknown:scope"
	md["logo_uri"] = "https://evil.example/logo.png" // ignored
	a := e.register(md)
	if a.status != http.StatusCreated {
		t.Fatalf("register = %d %s", a.status, a.raw)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", a.header.Get("Cache-Control"))
	}
	id, tok := a.str("client_id"), a.str("registration_access_token")
	if id == "" || tok == "" || a.str("registration_client_uri") != e.issuer+registration.Path+"/"+id {
		t.Fatalf("answer = %s", a.raw)
	}
	if a.str("scope") != "mcp:tools openid" { // accepted; only the policy's scopes granted
		t.Errorf("scope = %q", a.str("scope"))
	}
	if _, ok := a.body["client_secret"]; ok || a.str("token_endpoint_auth_method") != "none" {
		t.Errorf("public client answer = %s", a.raw)
	}
	if _, ok := a.body["client_id_issued_at"]; !ok {
		t.Errorf("no client_id_issued_at: %s", a.raw)
	}
	cl, err := e.srv.Clients().Get(context.Background(), id)
	if err != nil || !cl.Dynamic || cl.FirstParty || !cl.Public || !cl.IsNative() {
		t.Fatalf("stored client = %+v, %v", cl, err)
	}
	// The token is stored hashed only.
	raw := ""
	_ = e.store.View(context.Background(), func(tx storage.Tx) error {
		b, err := tx.Get("clients", id)
		raw = string(b)
		return err
	})
	if strings.Contains(raw, tok) || !strings.Contains(raw, "registration_token_sha256") {
		t.Fatalf("record = %s", raw)
	}

	uri := a.str("registration_client_uri")
	r := e.call(http.MethodGet, uri, tok, nil)
	if r.status != http.StatusOK || r.str("client_id") != id || r.str("client_name") != "Tool Runner" || r.body["dynamic"] != true {
		t.Fatalf("read = %d %s", r.status, r.raw)
	}
	md["client_id"] = id
	md["client_name"] = "Tool Runner 2"
	md["redirect_uris"] = []string{"http://127.0.0.1/cb2"}
	u := e.call(http.MethodPut, uri, tok, md)
	if u.status != http.StatusOK || u.str("client_name") != "Tool Runner 2" {
		t.Fatalf("update = %d %s", u.status, u.raw)
	}
	if cl, _ := e.srv.Clients().Get(context.Background(), id); cl.ClientName != "Tool Runner 2" || cl.RedirectURIs[0] != "http://127.0.0.1/cb2" {
		t.Fatalf("after update %+v", cl)
	}
	md["token_endpoint_auth_method"] = "client_secret_basic"
	if u := e.call(http.MethodPut, uri, tok, md); u.status != http.StatusBadRequest || u.str("error") != "invalid_client_metadata" {
		t.Fatalf("update auth method = %d %s", u.status, u.raw)
	}
	if d := e.call(http.MethodDelete, uri, tok, nil); d.status != http.StatusNoContent {
		t.Fatalf("delete = %d %s", d.status, d.raw)
	}
	if r := e.call(http.MethodGet, uri, tok, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("read after delete = %d %s", r.status, r.raw)
	}
	if _, err := e.srv.Clients().Get(context.Background(), id); err == nil {
		t.Fatal("client still stored")
	}
	// The audit log says what happened, and that the client was dynamic.
	page, err := audit.New(e.store, nil).Query(context.Background(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, ev := range page.Events {
		if ev.Target == id {
			acts = append(acts, ev.Action)
			if !strings.Contains(ev.Detail, "dynamic") {
				t.Errorf("event %s detail %q does not say dynamic", ev.Action, ev.Detail)
			}
		}
	}
	slices.Sort(acts)
	if !slices.Equal(acts, []string{"clients.delete", "clients.register", "clients.update"}) {
		t.Fatalf("audit actions = %v", acts)
	}
}

// TestInitialAccessToken: a gated endpoint wants the token, compared in
// constant time against its hash.
func TestInitialAccessToken(t *testing.T) {
	p := defaultPolicy()
	p.InitialAccessTokenHash = clients.HashToken("let-me-register-0123456789abcdef")
	e := newEnv(t, envOptions{policy: p})
	if a := e.register(publicClient()); a.status != http.StatusUnauthorized || a.str("error") != "invalid_token" || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token = %d %s", a.status, a.raw)
	}
	if a := e.call(http.MethodPost, registration.Path, "wrong", publicClient()); a.status != http.StatusUnauthorized {
		t.Fatalf("wrong token = %d %s", a.status, a.raw)
	}
	if a := e.call(http.MethodPost, registration.Path, "let-me-register-0123456789abcdef", publicClient()); a.status != http.StatusCreated {
		t.Fatalf("right token = %d %s", a.status, a.raw)
	}
}

// TestDCRCodeFlow: a dynamically registered public client logs a user in
// with code + PKCE on a loopback redirect on any port; the consent page
// marks it unverified and registered dynamically; consent is remembered.
func TestDCRCodeFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.register(publicClient())
	if a.status != http.StatusCreated {
		t.Fatalf("register = %d %s", a.status, a.raw)
	}
	id := a.str("client_id")
	b := e.browser()
	tr := e.codeFlow(b, id, "http://127.0.0.1:49321/callback", "mcp:tools", func(consent string) {
		for _, want := range []string{"Tool Runner (unverified)", "Unverified application", "Identity: registered dynamically"} {
			if !strings.Contains(consent, want) {
				t.Errorf("consent page lacks %q:\n%s", want, consent)
			}
		}
	})
	if tr.status != http.StatusOK || tr.str("refresh_token") == "" {
		t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	c := signettest.Claims(t, tr.str("access_token"))
	if c["aud"] != resource || c["client_id"] != id || c["scope"] != "mcp:tools" {
		t.Fatalf("claims = %v", c)
	}
	// Remembered per user, client and scope set: no consent page again,
	// on another port.
	if tr := e.codeFlow(b, id, "http://127.0.0.1:50000/callback", "mcp:tools", func(string) { t.Error("consent asked again") }); tr.status != http.StatusOK {
		t.Fatalf("second flow = %d %s", tr.status, tr.raw)
	}
	rt := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}, "client_id": {id}}, "", "")
	if rt.status != http.StatusOK {
		t.Fatalf("refresh = %d %s", rt.status, rt.raw)
	}
}

// TestCIMDCodeFlow: a client whose client_id is its metadata document URL
// logs a user in; the consent page shows the document's host; a warm
// cache fetches the document no more.
func TestCIMDCodeFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := e.serveJSON("/clients/tool.json", map[string]any{"client_name": "Doc Tool", "redirect_uris": []string{"http://127.0.0.1:40001/cb"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none", "scope": "mcp:tools"})
	b := e.browser()
	host := strings.TrimPrefix(e.docs.URL, "https://")
	tr := e.codeFlow(b, id, "http://127.0.0.1:40001/cb", "mcp:tools", func(consent string) {
		for _, want := range []string{"Doc Tool (unverified)", "Identity: " + host} {
			if !strings.Contains(consent, want) {
				t.Errorf("consent page lacks %q:\n%s", want, consent)
			}
		}
	})
	if tr.status != http.StatusOK {
		t.Fatalf("redeem = %d %s", tr.status, tr.raw)
	}
	if c := signettest.Claims(t, tr.str("access_token")); c["client_id"] != id || c["aud"] != resource {
		t.Fatalf("claims = %v", c)
	}
	if n := e.fetchCount("/clients/tool.json"); n != 1 {
		t.Fatalf("document fetched %d times, want 1 (cached)", n)
	}
	// The user's consents list it (the admin API and signet users consents).
	list, err := authority.Consents(context.Background(), e.store, e.alice.ID)
	if err != nil || len(list) != 1 || list[0].ClientID != id {
		t.Fatalf("consents = %+v, %v", list, err)
	}
	if tr := e.codeFlow(b, id, "http://127.0.0.1:40001/cb", "mcp:tools", nil); tr.status != http.StatusOK {
		t.Fatalf("second flow = %d %s", tr.status, tr.raw)
	}
	if n := e.fetchCount("/clients/tool.json"); n != 1 {
		t.Fatalf("document fetched %d times, want 1 (cached)", n)
	}
	// Redirect URIs are matched exactly: another port is refused.
	verifier, challenge := signettest.PKCE()
	_ = verifier
	p := b.Authorize(url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:40002/cb"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}})
	if p.Location != nil || !strings.Contains(p.Body, "not registered for the application") {
		t.Fatalf("other port: %d %v", p.Status, p.Location)
	}
}

// TestCIMDNativeLoopbackPort: a metadata document that says it is a
// native app (application_type native) has its loopback redirect URIs on
// 127.0.0.1 and [::1] matched on any port (RFC 8252 §7.3), as a native MCP
// client listening on a free port needs; everything else in it stays
// exact: its https URI, a localhost URI, another path, and every URI of a
// document that does not say native.
func TestCIMDNativeLoopbackPort(t *testing.T) {
	e := newEnv(t, envOptions{})
	doc := func(path, appType string) string {
		md := map[string]any{"client_name": "Native Tool", "redirect_uris": []string{"http://127.0.0.1/cb", "http://[::1]:7000/cb",
			"http://localhost:7001/cb", "https://tool.example.com/cb"}, "grant_types": []string{"authorization_code"},
			"token_endpoint_auth_method": "none", "scope": "mcp:tools"}
		if appType != "" {
			md["application_type"] = appType
		}
		return e.serveJSON(path, md)
	}
	native, web := doc("/clients/native.json", "native"), doc("/clients/web.json", "")
	b := e.browser()
	for _, row := range []struct {
		id, redirect string
		ok           bool
	}{
		{native, "http://127.0.0.1:51234/cb", true},
		{native, "http://127.0.0.1/cb", true},
		{native, "http://[::1]:51234/cb", true},
		{native, "http://127.0.0.1:51234/other", false},
		{native, "http://localhost:51234/cb", false}, // a name, not a loopback literal (RFC 8252 §8.3)
		{native, "https://tool.example.com:8443/cb", false},
		{native, "http://127.0.0.1.evil.example:51234/cb", false},
		{web, "http://127.0.0.1/cb", true},
		{web, "http://127.0.0.1:51234/cb", false},
		{web, "http://[::1]:51234/cb", false},
	} {
		_, challenge := signettest.PKCE()
		p := b.Authorize(url.Values{"response_type": {"code"}, "client_id": {row.id}, "redirect_uri": {row.redirect},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"mcp:tools"}})
		refused := p.Location == nil && strings.Contains(p.Body, "not registered for the application")
		if refused == row.ok {
			t.Errorf("%s with redirect_uri %s: status %d, refused %v, want allowed %v", row.id, row.redirect, p.Status, refused, row.ok)
		}
	}
	// Where it is allowed, the whole flow works with the port the app got.
	if tr := e.codeFlow(b, native, "http://127.0.0.1:51235/cb", "mcp:tools", nil); tr.status != http.StatusOK {
		t.Fatalf("code flow on another port = %d %s", tr.status, tr.raw)
	}
}

// TestPurgeUnused: a registered client unused for the policy's time is
// purged, with an audit event; one in use stays.
func TestPurgeUnused(t *testing.T) {
	p := defaultPolicy()
	p.UnusedTTL = 240 * time.Hour
	e := newEnv(t, envOptions{policy: p})
	ctx := context.Background()
	idle := e.register(publicClient()).str("client_id")
	busy := e.register(publicClient()).str("client_id")
	e.clock.Add(200 * time.Hour)
	if _, err := e.srv.Clients().Lookup(ctx, busy); err != nil { // a use, noted in the background
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		last, _, err := e.srv.Clients().LastUsed(ctx, busy)
		if err != nil {
			t.Fatal(err)
		}
		if !last.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the use was never noted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.clock.Add(100 * time.Hour)
	r := e.reg.Purge(ctx)
	if r.Err != nil || r.Deleted != 1 {
		t.Fatalf("purge = %+v", r)
	}
	if _, err := e.srv.Clients().Get(ctx, idle); err == nil {
		t.Error("idle client kept")
	}
	if _, err := e.srv.Clients().Get(ctx, busy); err != nil {
		t.Errorf("busy client purged: %v", err)
	}
	page, _ := audit.New(e.store, nil).Query(ctx, audit.Query{})
	found := false
	for _, ev := range page.Events {
		found = found || (ev.Action == "clients.purge_unused" && ev.Target == idle)
	}
	if !found {
		t.Error("no audit event for the purge")
	}
}

// TestDynamicListedAsSuch: the admin API shows dynamic clients as such.
func TestDynamicListedAsSuch(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := e.register(publicClient()).str("client_id")
	list, err := e.srv.Clients().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range list {
		if cl.ID == id {
			b, _ := json.Marshal(cl)
			if !strings.Contains(string(b), `"dynamic":true`) {
				t.Fatalf("admin JSON = %s", b)
			}
			return
		}
	}
	t.Fatal("not listed")
}
