package login_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/login"
)

// TestTemplatesDir: an operator's templates replace the built-in ones, and
// a directory missing one of them is refused at start.
func TestTemplatesDir(t *testing.T) {
	e := newEnv(t, envOptions{})
	dir := t.TempDir()
	src, err := os.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range src {
		b, err := os.ReadFile(filepath.Join("templates", f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() == "login.html" {
			b = []byte(strings.Replace(string(b), "<h1>", "<h1>Welcome to Example Corp. ", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := login.New(login.Config{Authority: e.srv, Sessions: e.sess, TemplatesDir: dir, ProductName: "Example"})
	if err != nil {
		t.Fatalf("custom templates: %v", err)
	}
	e.webClient("web", nil)
	ec := echo.New()
	h.Register(ec)
	_, ch := signettest.PKCE()
	rec := httptest.NewRecorder()
	ec.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth2/authorize?"+authzQuery(ch, nil).Encode(), nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Welcome to Example Corp.") || !strings.Contains(rec.Body.String(), "Sign in · Example") {
		t.Fatalf("custom login page = %d:\n%s", rec.Code, rec.Body.String())
	}
	if err := os.Remove(filepath.Join(dir, "consent.html")); err != nil {
		t.Fatal(err)
	}
	if _, err := login.New(login.Config{Authority: e.srv, Sessions: e.sess, TemplatesDir: dir}); err == nil || !strings.Contains(err.Error(), "consent.html") {
		t.Fatalf("missing consent.html = %v", err)
	}
	if _, err := login.New(login.Config{Authority: e.srv, Sessions: e.sess, LogoURL: "https://cdn.example/logo.png"}); err == nil {
		t.Fatal("a logo on another origin was accepted (the CSP would block it)")
	}
}

// TestConsentTemplate_KeepsAccess: the consent page of a third-party
// client that gets refresh tokens says that it keeps access while the
// user is away (issue 16 item 10), in the built-in template's note and in
// the list of what the user allows, so an operator's own template that
// shows only the list (ui.templates_dir) still tells the user.
func TestConsentTemplate_KeepsAccess(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.webClient("third", func(c *clients.Client) { c.FirstParty = false })
	b := e.browser()
	_, ch := signettest.PKCE()
	p := b.login(b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}})), "alice", alicePassword)
	for _, want := range []string{
		"<li>Keep this access while you are away, until you withdraw it <span class=\"scope\">(offline_access)</span></li>",
		"third keeps this access while you are away, until you withdraw it; ask your administrator to withdraw it.",
	} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("built-in consent page lacks %q:\n%s", want, p.Body)
		}
	}

	dir := t.TempDir()
	src, err := os.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range src {
		b, err := os.ReadFile(filepath.Join("templates", f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() == "consent.html" { // an operator's page: the list and the form, no note
			b = []byte(`{{template "head" .}}<ul>{{range .Scopes}}<li>{{.Text}}</li>{{end}}</ul>` +
				`<form method="post" action="{{.ActionURL}}"><input type="hidden" name="tx" value="{{.TxID}}">` +
				`<input type="hidden" name="csrf" value="{{.CSRF}}"><button name="decision" value="allow">OK</button></form>{{template "foot" .}}`)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := login.New(login.Config{Authority: e.srv, Sessions: e.sess, TemplatesDir: dir, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ec := echo.New()
	h.Register(ec)
	custom := httptest.NewServer(ec)
	defer custom.Close()
	at := *e
	at.issuer = custom.URL // the browser talks to the server with the operator's templates
	b = at.browser()
	p = b.login(b.Authorize(authzQuery(ch, url.Values{"client_id": {"third"}})), "alice", alicePassword)
	if !strings.Contains(p.Body, "<li>Keep this access while you are away, until you withdraw it</li>") {
		t.Errorf("operator's consent page lacks the keep-access line:\n%s", p.Body)
	}
}
