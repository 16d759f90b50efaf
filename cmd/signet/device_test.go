//go:build browser

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/users"
)

// deviceCLIClient is a public client with the device grant, as a
// command-line tool is registered.
var deviceCLIClient = clients.Client{ID: "cli", ClientName: "Signet CLI", Public: true, AuthMethods: []string{clients.AuthNone},
	GrantTypes: []string{clients.GrantDeviceCode, clients.GrantRefreshToken}, Scopes: []string{"openid", "profile", "read"},
	DefaultScopes: []string{"openid"}, Audiences: []string{"api"}, FirstParty: true}

// TestBrowserDeviceFlow: a terminal program logs in with x/oauth2's
// DeviceAuth and DeviceAccessToken (polling while it waits) against
// `signet serve`, and the user enters the code in Chromium, signs in and
// allows the device.
func TestBrowserDeviceFlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := testConfig(t, func(c *config.Config) {
		c.HTTP.Addr = addr
		c.Issuer = "http://" + addr
		c.Keys.Algorithms = []string{"RS256"}
	})
	// The real clock: x/oauth2 waits the interval in real time, and the
	// server checks it.
	m, logs := startMain(t, c, time.Now)
	ctx := t.Context()
	alice, err := m.Server.Users().Create(ctx, users.NewUser{Username: "alice", Password: "correct horse battery", Name: "Alice Liddell"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Server.Clients().Create(ctx, deviceCLIClient); err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: "cli", Scopes: []string{"openid", "read"}, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: c.Issuer + "/oauth2/device_authorization", TokenURL: c.Issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	pollCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	go func() {
		tok, err := cfg.DeviceAccessToken(pollCtx, da)
		done <- result{tok, err}
	}()

	b := newChromium(t, 480, 760, logs.String)
	// The user types the code as read from the terminal: lower case, no dash.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	b.step("open the device page", chromedp.Navigate(da.VerificationURI), chromedp.WaitVisible(chromedp.CSS("#user_code")))
	b.step("type the code", chromedp.SendKeys(chromedp.CSS("#user_code"), typed))
	b.shot("device.png")
	b.step("enter the code", chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#password")))
	b.step("sign in", append(passwordSignIn("alice", "correct horse battery"), chromedp.WaitVisible(chromedp.CSS("#user-code")))...)
	if shown := b.text("#user-code"); shown != da.UserCode {
		t.Fatalf("confirmation shows code %q, want %q", shown, da.UserCode)
	}
	b.shot("device-confirm.png")
	b.step("allow", chromedp.Click(chromedp.CSS(`button[value=allow]`)), chromedp.WaitVisible(chromedp.CSS("#device-done")))

	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("DeviceAccessToken did not return a minute after the approval\nlogs:\n%s", logs)
	}
	if r.err != nil {
		t.Fatalf("DeviceAccessToken: %v", r.err)
	}
	if r.tok.RefreshToken == "" || r.tok.Extra("id_token") == nil {
		t.Errorf("token without refresh or ID token: %+v", r.tok)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(r.tok.AccessToken, ".")[1])
	var claims struct{ Sub, Scope, ClientID string }
	_ = json.Unmarshal(payload, &claims)
	if claims.Sub != alice.ID || claims.Scope != "openid read" {
		t.Errorf("access token sub %q scope %q, want %s and openid read", claims.Sub, claims.Scope, alice.ID)
	}
}

var (
	deviceActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	deviceHiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
)

// deviceBrowser fills in the hosted device page over HTTP, keeping cookies.
type deviceBrowser struct {
	t *testing.T
	c *http.Client
}

func (b *deviceBrowser) get(u string) string {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// submit posts the form on page (to base + its action) with extra fields.
func (b *deviceBrowser) submit(base, page string, extra url.Values) string {
	b.t.Helper()
	m := deviceActionRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form on the page:\n%s", page)
	}
	v := url.Values{}
	for _, h := range deviceHiddenRE.FindAllStringSubmatch(page, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	for k, vals := range extra {
		v[k] = vals
	}
	resp, err := b.c.PostForm(base+html.UnescapeString(m[1]), v)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// TestReplicas_Etcd_DeviceFlow: two replicas on one etcd. The polling
// interval holds across them (a poll at A then at B is too fast), the
// user approves at B a code asked for at A, and of concurrent polls at
// both replicas exactly one gets the tokens.
func TestReplicas_Etcd_DeviceFlow(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	a, _ := startEtcdReplica(t, cl, "a", "device/", kek, nil)
	b, _ := startEtcdReplica(t, cl, "b", "device/", kek, nil)
	ctx := t.Context()
	if _, err := a.Server.Users().Create(ctx, users.NewUser{Username: "alice", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Server.Clients().Create(ctx, deviceCLIClient); err != nil {
		t.Fatal(err)
	}
	post := func(m *Main, path string, form url.Values) (int, map[string]any) {
		form.Set("client_id", "cli")
		resp, err := http.PostForm(m.URL()+path, form)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	start := func(m *Main) map[string]any {
		t.Helper()
		// A replica learns of the client from the watch.
		for deadline := time.Now().Add(5 * time.Second); ; {
			code, body := post(m, "/oauth2/device_authorization", url.Values{"scope": {"read"}})
			if code == http.StatusOK {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("device authorization at %s: %d %v", m.URL(), code, body)
			}
			time.Sleep(10 * time.Millisecond) // waiting for the watch, bounded
		}
	}
	poll := func(m *Main, dc string) (int, string) {
		code, body := post(m, "/oauth2/token", url.Values{"grant_type": {clients.GrantDeviceCode}, "device_code": {dc}})
		e, _ := body["error"].(string)
		return code, e
	}
	start(b) // B knows the client
	da := start(a)
	dc := da["device_code"].(string)
	if _, e := poll(a, dc); e != "authorization_pending" {
		t.Fatalf("first poll at A = %q, want authorization_pending", e)
	}
	if _, e := poll(b, dc); e != "slow_down" {
		t.Fatalf("poll at B right after A = %q, want slow_down (the interval is per code, not per replica)", e)
	}

	// The user approves at B.
	jar, _ := cookiejar.New(nil)
	br := &deviceBrowser{t: t, c: &http.Client{Jar: jar}}
	page := br.submit(b.URL(), br.get(b.URL()+"/device"), url.Values{"user_code": {da["user_code"].(string)}})
	page = br.submit(b.URL(), page, url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	if page = br.submit(b.URL(), page, url.Values{"decision": {"allow"}}); !strings.Contains(page, "device-done") {
		t.Fatalf("approval at B:\n%s", page)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, e := poll([]*Main{a, b}[i%2], dc)
			if code == http.StatusOK {
				e = "tokens"
			}
			mu.Lock()
			got[e]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if got["tokens"] != 1 || got["invalid_grant"] != 7 {
		t.Fatalf("8 concurrent polls at two replicas: %v, want exactly one with tokens and 7 invalid_grant", got)
	}
}
