package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/storage/bolt"
)

// TestDemo walks docs/demo.md against a real authority on 127.0.0.1: a
// token for the demo client, a call to the API, a rotation, a new token,
// another call; and the refusals a newcomer should see.
func TestDemo(t *testing.T) {
	ctx := t.Context()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	km, err := keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{1}, keys.KEKSize), Algorithms: []string{"RS256"}, MaxTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	var h http.Handler
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer as.Close()
	srv, err := authority.New(ctx, authority.Config{Admin: admin.Routes, Issuer: as.URL, Store: st, JWKS: jwksdoc.NewHandler(km, time.Minute, slog.New(slog.DiscardHandler)),
		Signer: km, KeySet: km, Algorithms: []string{"RS256"}})
	if err != nil {
		t.Fatal(err)
	}
	h = srv
	id, secret, created, err := authority.EnsureDemoClient(ctx, srv.Clients())
	if err != nil || !created {
		t.Fatalf("demo client: %v", err)
	}

	v, err := jwks.NewVerifier(ctx, as.URL, jwks.WithAudience(authority.DemoAudience))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	api := httptest.NewServer(newAPI(v, authority.DemoScope))
	defer api.Close()

	token := func() string {
		cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: as.URL + "/oauth2/token", Scopes: []string{authority.DemoScope}, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	call := func(bearer string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/hello", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
	}

	first := token()
	status, _, body := call(first)
	var got map[string]any
	_ = json.Unmarshal([]byte(body), &got)
	if status != http.StatusOK || got["hello"] != id || got["client_id"] != id {
		t.Fatalf("GET /hello = %d %s", status, body)
	}
	if err := km.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	second := token()
	if status, _, body := call(second); status != http.StatusOK {
		t.Fatalf("after rotation, a new token: %d %s", status, body)
	}
	if status, _, body := call(first); status != http.StatusOK {
		t.Fatalf("after rotation, the token from before: %d %s", status, body)
	}
	if status, www, _ := call(""); status != http.StatusUnauthorized || !strings.HasPrefix(www, "Bearer") {
		t.Errorf("no token: %d %q, want 401 with a Bearer challenge", status, www)
	}
	if status, www, _ := call(first[:len(first)-4] + "AAAA"); status != http.StatusUnauthorized || !strings.Contains(www, `error="invalid_token"`) {
		t.Errorf("tampered token: %d %q, want 401 invalid_token", status, www)
	}
	other, otherSecret, err := srv.Clients().Create(ctx, clients.Client{ID: "other", Scopes: []string{"demo:write"}, Audiences: []string{authority.DemoAudience}})
	if err != nil {
		t.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: other.ID, ClientSecret: otherSecret, TokenURL: as.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status, www, _ := call(tok.AccessToken); status != http.StatusForbidden || !strings.Contains(www, "insufficient_scope") {
		t.Errorf("token without demo:read: %d %q, want 403 insufficient_scope", status, www)
	}
}
