package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/backchannel"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/users"
)

// TestReplicas_Etcd_BackchannelLogout (issue 21, what must be shown):
// three replicas on one etcd, sessions ended through each of them while
// the relying party is down, and the leader stopped while it is down.
// When the RP returns, every logout is delivered (verified by the RP),
// once: no (client, sid) and no jti twice, and the outbox is empty.
func TestReplicas_Etcd_BackchannelLogout(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	enc := base64.StdEncoding.EncodeToString(kek)
	issuerAddr := freeAddr(t)
	var rs []*Main
	for i, name := range []string{"a", "b", "c"} {
		c := testConfig(t, func(c *config.Config) {
			c.Storage.Backend = "etcd"
			c.Storage.Etcd.Endpoints = cl.Endpoints()
			c.Storage.Etcd.Prefix = "bc/"
			c.Audit.Replica = name
			c.Issuer = "http://" + issuerAddr // one issuer behind a load balancer; replica a answers at it
			if i == 0 {
				c.HTTP.Addr = issuerAddr
			}
		})
		m := &Main{Config: c, LogOutput: &signettest.LogBuffer{}, backchannelTuning: func(c *backchannel.Config) {
			fastBackoff(c)
			c.ClaimFor = 2 * time.Second
		}, Getenv: func(k string) string {
			if k == "SIGNET_KEK" {
				return enc
			}
			return ""
		}}
		if err := m.Open(t.Context()); err != nil {
			m.Close()
			t.Fatalf("open %s: %v", name, err)
		}
		t.Cleanup(func() { m.Close() })
		rs = append(rs, m)
	}
	a := rs[0]
	issuer := "http://" + issuerAddr
	rp := newLogoutRP(t, issuer)
	ctx := t.Context()
	secrets := map[string]string{}
	for _, id := range []string{"notes", "calendar"} {
		_, secret, err := a.Server.Clients().Create(ctx, clients.Client{ID: id, FirstParty: true, GrantTypes: []string{clients.GrantAuthorizationCode},
			Scopes: []string{"openid"}, Audiences: []string{"api"}, RedirectURIs: []string{rp.srv.URL + "/cb"},
			BackchannelLogoutURI: rp.srv.URL + "/bc/" + id, BackchannelLogoutSessionRequired: true})
		if err != nil {
			t.Fatal(err)
		}
		secrets[id] = secret
	}
	_, opsSecret, err := a.Server.Clients().Create(ctx, clients.Client{ID: "ops", Scopes: []string{"signet:admin"}, Audiences: []string{"signet-admin"}})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := issueToken(ctx, a.URL(), "ops", opsSecret)
	if err != nil {
		t.Fatal(err)
	}

	// Six users, each signed in to both clients at replica a.
	type sess struct{ user, sid, idToken string }
	var ss []sess
	for i := range 6 {
		name := fmt.Sprintf("user%d", i)
		u, err := a.Server.Users().Create(ctx, users.NewUser{Username: name, Password: "a long enough password"})
		if err != nil {
			t.Fatal(err)
		}
		b := newBCBrowser(t, a.URL())
		sid, idt := b.signIn("notes", secrets["notes"], rp.srv.URL+"/cb", name, "a long enough password")
		if s2, _ := b.signIn("calendar", secrets["calendar"], rp.srv.URL+"/cb", name, "a long enough password"); s2 != sid {
			t.Fatalf("SSO: %s and %s", sid, s2)
		}
		ss = append(ss, sess{u.ID, sid, idt})
	}

	rp.setDown(true)
	// Sessions end through every replica: force logout at b and c, a
	// password change at a, server-side RP-initiated logout at b and c.
	// The admin API's changes wait for the watch: the user must be known
	// to the replica (a 404 is retried, bounded).
	adminAt := func(m *Main, method, path, body string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			req, _ := http.NewRequest(method, m.URL()+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s at %s: %d", method, path, m.URL(), resp.StatusCode)
			}
		}
	}
	adminAt(rs[1], http.MethodPost, "/admin/users/"+ss[0].user+"/logout", "{}")
	adminAt(rs[2], http.MethodPost, "/admin/users/"+ss[1].user+"/logout", "{}")
	adminAt(rs[0], http.MethodPost, "/admin/users/"+ss[2].user+"/password", `{"password":"another long password"}`)
	adminAt(rs[1], http.MethodPatch, "/admin/users/"+ss[3].user, `{"disabled":true}`)
	for i, m := range []*Main{rs[1], rs[2]} {
		resp, err := http.Get(m.URL() + "/oauth2/logout?id_token_hint=" + url.QueryEscape(ss[4+i].idToken))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("logout at %s: %d", m.URL(), resp.StatusCode)
		}
	}
	// The RP has refused attempts; then the leader stops (another takes
	// over) while it is still down.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rp.mu.Lock()
		hits := rp.downHits
		rp.mu.Unlock()
		if hits >= 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d attempts while the RP was down", hits)
		}
	}
	// The leader's pending gauge counts the outbox: 6 sessions × 2 clients.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var body string
		for _, m := range rs {
			if m.leader.Leading() {
				body = metricsBody(t, m.URL())
			}
		}
		if strings.Contains(body, "signet_backchannel_logout_pending 12\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader's pending gauge:\n%s", grepLines(body, "signet_backchannel"))
		}
	}
	var survivors []*Main
	stopped := false
	for _, m := range rs {
		if m.leader.Leading() && !stopped {
			stopped = true
			m.Close()
			continue
		}
		survivors = append(survivors, m)
	}
	if !stopped {
		t.Fatal("no replica leads")
	}
	rp.mu.Lock()
	rp.jwksBase = survivors[0].URL()
	rp.mu.Unlock()
	rp.setDown(false)

	got := rp.wait(12)
	assertOutboxEmpty(t, survivors[0])
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.received) != 12 {
		t.Errorf("%d logout tokens delivered, want 12 (6 sessions × 2 clients)", len(rp.received))
	}
	pairs := map[string]int{}
	for _, c := range got {
		pairs[fmt.Sprintf("%v %v", c["aud"], c["sid"])]++
	}
	for _, s := range ss {
		for _, id := range []string{"notes", "calendar"} {
			if n := pairs[id+" "+s.sid]; n != 1 {
				t.Errorf("%s got the logout of %s %d times, want once", id, s.sid, n)
			}
		}
	}
	for jti, n := range rp.jtis {
		if n != 1 {
			t.Errorf("jti %s delivered %d times", jti, n)
		}
	}
}
