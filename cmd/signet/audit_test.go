package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/storage"
)

// auditCmd runs `signet audit ... --json` and decodes the page.
func auditCmd(t *testing.T, args ...string) audit.Page {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := runAudit(t.Context(), append(args, "--json"), &stdout, &stderr); err != nil {
		t.Fatalf("audit %v: %v\n%s", args, err, stderr.String())
	}
	var p audit.Page
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatalf("audit %v output %q: %v", args, stdout.String(), err)
	}
	return p
}

func findEvent(evs []audit.Event, action string) (audit.Event, bool) {
	for _, ev := range evs {
		if ev.Action == action {
			return ev, true
		}
	}
	return audit.Event{}, false
}

// TestAudit_CronRotationAndRetention: the scheduled jobs, run on an injected
// clock, record their key changes as actor cron with the replica name and
// the clock's time, and the purge job applies audit.retention.
func TestAudit_CronRotationAndRetention(t *testing.T) {
	clk := &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	c := testConfig(t, func(c *config.Config) {
		c.Keys.Algorithms = []string{"ES256"}
		c.Keys.Rotation.Schedule = "@every 10m"
		c.Keys.Purge.Leeway = "1m"
		c.Tokens.MaxTTL = "15m"
		c.JWKS.MaxAge = "60s"
		c.Audit.Retention = "1h"
		c.Audit.Replica = "node-a"
	})
	m, _ := startMain(t, c, clk.Now)
	ctx := t.Context()
	log := audit.New(m.Store, nil)

	first, _ := m.Keys.SigningKey("ES256")
	clk.Add(10 * time.Minute)
	m.rotateJob(ctx)
	rotatedAt := clk.Now()
	second, _ := m.Keys.SigningKey("ES256")
	p, err := log.Query(ctx, audit.Query{Action: "keys.rotate"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 {
		t.Fatalf("keys.rotate events = %+v, want 1", p.Events)
	}
	ev := p.Events[0]
	if ev.Actor != audit.ActorCron || ev.Replica != "node-a" || !ev.Time.Equal(rotatedAt) || ev.Outcome != "ok" ||
		!strings.Contains(ev.Detail, "active_before=ES256:"+first.KeyID()) || !strings.Contains(ev.Detail, "active_after=ES256:"+second.KeyID()) {
		t.Errorf("cron rotation event = %+v", ev)
	}
	if ens, ok := findEvent(mustAll(t, log), "keys.ensure"); !ok || ens.Actor != audit.ActorSystem || ens.Replica != "node-a" {
		t.Errorf("first key set event = %+v (found %t)", ens, ok)
	}

	// The retired key expires after max_ttl + leeway: the purge deletes it
	// and says so; the hour-old events go with audit.retention = 1h.
	clk.Add(61 * time.Minute)
	m.purgeJob(ctx)
	all := mustAll(t, log)
	purge, ok := findEvent(all, "keys.purge")
	if !ok || purge.Actor != audit.ActorCron || !strings.Contains(purge.Detail, first.KeyID()) {
		t.Errorf("key purge event = %+v (found %t)", purge, ok)
	}
	if _, ok := findEvent(all, "keys.rotate"); ok {
		t.Error("the rotation event outlived audit.retention")
	}
	ap, ok := findEvent(all, "audit.purge")
	if !ok || ap.Actor != audit.ActorCron || ap.Replica != "node-a" || !strings.Contains(ap.Detail, "deleted=2") {
		t.Errorf("audit purge event = %+v (found %t); all: %+v", ap, ok, all)
	}
	// The purge metrics say what the run did, and how long the oldest
	// expired record had waited: the first key set event, made at the
	// start, expired 11 minutes before this run (retention 1h, run at 71m).
	_, text := scrape(t, m.URL())
	for _, want := range []string{
		`signet_purge_deleted_total{kind="audit"} 2`,
		`signet_purge_deleted_total{kind="keys"} 1`,
		`signet_purge_failures_total{kind="refresh_sessions"} 0`,
		`signet_purge_oldest_expired_seconds{kind="audit"} 660`,
		`signet_purge_oldest_expired_seconds{kind="refresh_sessions"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}

func mustAll(t *testing.T, l *audit.Log) []audit.Event {
	t.Helper()
	p, err := l.Query(t.Context(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Events
}

// TestAudit_OfflineKeys: offline keys revoke and rotate write events as
// actor cli with the OS user, which `signet audit` reads offline.
func TestAudit_OfflineKeys(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	m, _ := startMain(t, c, nil)
	active, _ := m.Keys.SigningKey("ES256")
	m.Close()

	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"keys", "revoke", "--data-dir", c.DataDir, active.KeyID()}, &out, &errOut); code != 0 {
		t.Fatalf("keys revoke: %s", errOut.String())
	}
	if code := run(t.Context(), []string{"keys", "rotate", "--force", "--data-dir", c.DataDir}, &out, &errOut); code != 0 {
		t.Fatalf("keys rotate: %s", errOut.String())
	}
	p := auditCmd(t, "--data-dir", c.DataDir, "--action", "keys.*")
	if len(p.Events) != 3 || p.Events[0].Action != "keys.rotate" || p.Events[1].Action != "keys.revoke" || p.Events[2].Action != "keys.ensure" {
		t.Fatalf("key events = %+v, want rotate, revoke, ensure", p.Events)
	}
	for _, ev := range p.Events[:2] {
		if ev.Actor != audit.ActorCLI || ev.OSUser != osUserName() || ev.OSUser == "" {
			t.Errorf("offline event = %+v, want actor cli, os_user %s", ev, osUserName())
		}
	}
	if p.Events[1].Target != active.KeyID() || !strings.Contains(p.Events[1].Detail, "was=active") {
		t.Errorf("revoke event = %+v", p.Events[1])
	}
	out.Reset()
	if code := run(t.Context(), []string{"audit", "--data-dir", c.DataDir}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "cli("+osUserName()+")") {
		t.Errorf("audit table (code %d):\n%s", code, out.String())
	}
}

// TestAudit_OnlineAndPaging: an admin rotation is recorded with the admin
// client as actor; `signet audit` pages through more than one admin API page
// (1000 events) by cursor, online and offline, and gives the same events.
func TestAudit_OnlineAndPaging(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	var stdout, stderr bytes.Buffer
	if err := runKeys(t.Context(), []string{"rotate", "--force", "--server", m.URL()}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	p := auditCmd(t, "--server", m.URL(), "--action", "keys.rotate")
	if len(p.Events) != 1 || p.Events[0].Actor != admin.ClientID || p.Events[0].RequestID == "" || p.Events[0].Outcome != "ok" || p.Events[0].Replica != c.ReplicaName() {
		t.Fatalf("online rotation events = %+v, want one by %s with a request id", p.Events, admin.ClientID)
	}

	// 1500 more events, older than the rotation.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err = m.Store.Update(t.Context(), func(tx storage.Tx) error {
		for i := range 1500 {
			if err := audit.Put(tx, audit.Event{Time: base.Add(time.Duration(i) * time.Second), Actor: "filler", Action: "test.fill", Target: fmt.Sprint(i), Outcome: "ok"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	online := auditCmd(t, "--server", m.URL(), "--limit", "0", "--action", "test.fill")
	if len(online.Events) != 1500 || online.NextCursor != "" {
		t.Fatalf("online --limit 0: %d events, cursor %q; want 1500", len(online.Events), online.NextCursor)
	}
	for i, ev := range online.Events {
		if want := fmt.Sprint(1499 - i); ev.Target != want {
			t.Fatalf("online event %d = %s, want %s (newest first, each once)", i, ev.Target, want)
		}
	}
	// A limited read returns a cursor; continuing from it gives the rest.
	head := auditCmd(t, "--server", m.URL(), "--limit", "1200", "--action", "test.fill")
	if len(head.Events) != 1200 || head.NextCursor == "" {
		t.Fatalf("--limit 1200: %d events, cursor %q", len(head.Events), head.NextCursor)
	}
	tail := auditCmd(t, "--server", m.URL(), "--limit", "0", "--action", "test.fill", "--cursor", head.NextCursor)
	if len(tail.Events) != 300 || tail.Events[0].Target != "299" {
		t.Fatalf("after the cursor: %d events, first %+v", len(tail.Events), tail.Events)
	}
	window := auditCmd(t, "--server", m.URL(), "--since", base.Add(10*time.Second).Format(time.RFC3339), "--until", base.Add(20*time.Second).Format(time.RFC3339))
	if len(window.Events) != 10 || window.Events[0].Target != "19" {
		t.Errorf("since/until window: %+v", window.Events)
	}
	m.Close()
	offline := auditCmd(t, "--data-dir", c.DataDir, "--limit", "0", "--action", "test.fill")
	if len(offline.Events) != 1500 {
		t.Errorf("offline: %d events", len(offline.Events))
	}
	var errOut bytes.Buffer
	if code := run(t.Context(), []string{"audit", "--data-dir", c.DataDir, "--cursor", "nonsense"}, &stdout, &errOut); code == 0 || !strings.Contains(errOut.String(), "cursor") {
		t.Errorf("bad cursor: code %d: %s", code, errOut.String())
	}
}
