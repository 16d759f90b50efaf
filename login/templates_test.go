package login_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

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
	_, ch := pkce()
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
