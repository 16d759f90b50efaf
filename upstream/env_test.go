package upstream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/upstream"
	"github.com/signet-auth/signet/users"
)

// signet is a whole Signet over real HTTP on 127.0.0.1 (bolt in a temp
// dir, the real key manager, authority, sessions and login surface), as
// signet serve assembles it; with providers it signs in through them.
type signet struct {
	t      testing.TB
	srv    *authority.Server
	http   *httptest.Server
	issuer string
	st     *bolt.Store
	// logs has every log line of this Signet (JSON, debug level).
	logs *logBuffer
	// swaps, by path, replace the answer body of that path (the
	// upstream's token endpoint: a test that substitutes another real ID
	// token; its discovery document).
	mu    sync.Mutex
	swaps map[string]func([]byte) []byte
	// sess and mfa are its sessions and second factors (amr_test.go).
	sess *sessions.Manager
	mfa  *mfa.Factors
}

var quiet = slog.New(slog.DiscardHandler)

// logBuffer collects log lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSignet(t testing.TB, providers func(issuer string) []upstream.Provider, passwordLogin bool) *signet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &signet{t: t, logs: &logBuffer{}, swaps: map[string]func([]byte) []byte{}}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.st = st
	algs := []string{"RS256", "ES256"}
	km, err := keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{7}, 32), Algorithms: algs, MaxTokenTTL: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		swap := s.swaps[r.URL.Path]
		s.mu.Unlock()
		if swap != nil {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(swap(rec.Body.Bytes()))
			return
		}
		h.ServeHTTP(w, r)
	}))
	s.issuer = s.http.URL
	if providers == nil {
		// The upstream is another host name for the browser's cookie jar:
		// cookies are per host, not per port, and both Signets name
		// their cookies alike.
		s.issuer = strings.Replace(s.issuer, "127.0.0.1", "localhost", 1)
	}
	s.srv, err = authority.New(ctx, authority.Config{
		Admin: admin.Routes, Issuer: s.issuer, Store: st, JWKS: jwksdoc.NewHandler(km, 5*time.Minute, quiet),
		Signer: km, KeySet: km, Algorithms: algs, Scopes: []string{"read"},
		Password:       users.PasswordParams{Memory: 64, Time: 1, Threads: 1},
		LoginRateLimit: authority.LoginRateLimit{PerUserIP: -1, PerIP: -1, PerUser: -1}, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	sess := sessions.New(st, sessions.Options{IdleTTL: time.Hour, AbsoluteTTL: 8 * time.Hour})
	s.sess, s.mfa = sess, mfa.New(st, bytes.Repeat([]byte{8}, 32), time.Now)
	cfg := login.Config{Authority: s.srv, Sessions: sess, Factors: s.mfa, Logger: logger}
	if providers != nil {
		cfg.External, err = upstream.New(upstream.Config{Providers: providers(s.issuer), PasswordLogin: passwordLogin, Issuer: s.issuer,
			Fetcher: outbound.New(outbound.Options{AllowLoopback: true, Logger: logger}), Sessions: sess, Users: s.srv.Users(), Store: st,
			KEK: bytes.Repeat([]byte{9}, 32), Leeway: time.Minute, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
	}
	ui, err := login.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.srv.Register(ui.Register)
	h = s.srv
	t.Cleanup(func() {
		s.http.Close()
		cancel()
		_ = km.Close()
		_ = st.Close()
	})
	return s
}

func (s *signet) user(name, password, email string, verified bool) users.User {
	s.t.Helper()
	u, err := s.srv.Users().Create(context.Background(), users.NewUser{Username: name, Password: password, Email: email, EmailVerified: verified, Name: "Name of " + name})
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

// client registers a confidential first-party code-flow client, with
// its post_logout_redirect_uris.
func (s *signet) client(id string, redirect string, postLogout ...string) string {
	s.t.Helper()
	return s.clientURIs(id, []string{redirect}, postLogout)
}

func (s *signet) clientURIs(id string, redirects, postLogout []string) string {
	s.t.Helper()
	_, secret, err := s.srv.Clients().Create(context.Background(), clients.Client{ID: id,
		GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid", "profile", "email"}, DefaultScopes: []string{"openid"},
		Audiences: []string{"api"}, RedirectURIs: redirects, PostLogoutRedirectURIs: postLogout, FirstParty: true})
	if err != nil {
		s.t.Fatal(err)
	}
	return secret
}

// setSwap replaces the token endpoint's answers (nil: no more).
func (s *signet) setSwap(f func([]byte) []byte) { s.setSwapPath("/oauth2/token", f) }

func (s *signet) setSwapPath(path string, f func([]byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.swaps, path)
		return
	}
	s.swaps[path] = f
}

func pkce() (string, string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	return v, authority.S256(v)
}

// browser keeps cookies for every host and follows no redirect, so a test
// sees every hop.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status   int
	body     string
	location *url.URL
}

var continueRE = regexp.MustCompile(`<a class="button" href="([^"]+)">Continue to the application</a>`)

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.location, _ = req.URL.Parse(loc)
	} else if m := continueRE.FindStringSubmatch(p.body); m != nil {
		p.location, _ = url.Parse(html.UnescapeString(m[1]))
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formRE   = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)"[^>]*>(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
)

// submit posts the form of p whose body contains marker, with extra fields.
func (b *browser) submit(base string, p page, marker string, extra url.Values) page {
	b.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(p.body, -1) {
		if !strings.Contains(m[2], marker) {
			continue
		}
		v := url.Values{}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			v.Set(h[1], html.UnescapeString(h[2]))
		}
		for k, vals := range extra {
			v[k] = vals
		}
		return b.post(base+html.UnescapeString(m[1]), v)
	}
	b.t.Fatalf("no form with %q on the page (status %d):\n%s", marker, p.status, p.body)
	return page{}
}

// follow goes where p sends the browser.
func (b *browser) follow(p page) page {
	b.t.Helper()
	if p.location == nil {
		b.t.Fatalf("page sends nowhere (status %d):\n%s", p.status, p.body)
	}
	return b.get(p.location.String())
}

func (s *signet) token(id, secret string, form url.Values) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
