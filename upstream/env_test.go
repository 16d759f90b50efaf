package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/keys"
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
	logs *signettest.LogBuffer
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

func newSignet(t testing.TB, providers func(issuer string) []upstream.Provider, passwordLogin bool) *signet {
	t.Helper()
	s := &signet{t: t, logs: &signettest.LogBuffer{}, swaps: map[string]func([]byte) []byte{}}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The upstream is another host name for the browser's cookie jar:
	// cookies are per host, not per port, and both Signets name their
	// cookies alike.
	st := signettest.Start(t, signettest.Options{Logger: logger, RealTime: true, Localhost: providers == nil,
		Keys: func(o *keys.Options) { o.Logger = quiet }})
	s.st, s.http, s.issuer = st.Bolt, st.HTTP, st.Issuer
	cfg := st.Config()
	s.srv = st.Authority(cfg)
	sess := st.Sessions(st.Store)
	s.sess, s.mfa = sess, mfa.New(st.Store, bytes.Repeat([]byte{8}, 32), time.Now)
	lcfg := login.Config{Sessions: sess, Factors: s.mfa}
	if providers != nil {
		var err error
		lcfg.External, err = upstream.New(upstream.Config{Providers: providers(s.issuer), PasswordLogin: passwordLogin, Issuer: s.issuer,
			Fetcher: outbound.New(outbound.Options{AllowLoopback: true, Logger: logger}), Sessions: sess, Users: s.srv.Users(), Store: st.Store,
			KEK: bytes.Repeat([]byte{9}, 32), Leeway: time.Minute, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
	}
	st.Login(s.srv, lcfg)
	h := s.srv
	st.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

// browser keeps cookies for every host and follows no redirect, so a test
// sees every hop.
type browser = signettest.Browser

type page = signettest.Page

func newBrowser(t testing.TB) *browser { return signettest.NewBrowser(t, "", nil) }

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
