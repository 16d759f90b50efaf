package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signet-auth/signet/adminclient"
	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
)

// withReplica names this server in the audit events that admin and OAuth
// requests write. Other requests (JWKS, health) skip the context allocation.
func withReplica(h http.Handler, replica string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/") || strings.HasPrefix(r.URL.Path, "/oauth2/") {
			r = r.WithContext(audit.WithActor(r.Context(), audit.Actor{Replica: replica}))
		}
		h.ServeHTTP(w, r)
	})
}

// osUserName is the operating-system user running an offline command.
func osUserName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// cliContext attributes the changes made through ctx to the offline CLI.
func cliContext(ctx context.Context) context.Context {
	return audit.WithActor(ctx, audit.Actor{Name: audit.ActorCLI, OSUser: osUserName()})
}

// purgeAudit deletes the audit events older than audit.retention and records
// that it did.
func (m *Main) purgeAudit(ctx context.Context) storage.Purged {
	log := audit.New(m.Store, m.Now)
	retention := m.Config.Parsed.AuditRetention
	cutoff := m.Now().Add(-retention)
	r := log.Purge(ctx, cutoff)
	if !r.Oldest.IsZero() {
		r.Oldest = r.Oldest.Add(retention) // when the oldest event expired
	}
	if r.Deleted > 0 {
		ev := audit.Attribute(ctx, audit.Event{Action: "audit.purge", Outcome: audit.OutcomeOK,
			Detail: fmt.Sprintf("deleted=%d before=%s", r.Deleted, cutoff.UTC().Format(time.RFC3339))})
		if err := log.Record(ctx, ev); err != nil && r.Err == nil {
			r.Err = fmt.Errorf("record the audit purge: %w", err)
		}
	}
	return r
}

// auditPageSize is what one admin API call returns at most.
const auditPageSize = 1000

// runAudit is `signet audit`: the audit trail, newest first, online through
// the admin API or offline on a stopped store, paged by cursor.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit", stderr)
	var cf configFlags
	cf.registerOffline(fs)
	since := fs.String("since", "", "events at or after T (RFC 3339, or a duration ago such as 24h)")
	until := fs.String("until", "", "events before T (RFC 3339, or a duration ago)")
	action := fs.String("action", "", "only this action (keys.rotate), or a prefix (keys.*)")
	limit := fs.Int("limit", 100, "print at most N events; 0 prints all")
	cursor := fs.String("cursor", "", "continue after a previous run (its next cursor)")
	asJSON := fs.Bool("json", false, `print {"events": [...], "next_cursor": "..."} instead of a table`)
	server := fs.String("server", "", "read from a running server at URL (admin credentials from SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *limit < 0 {
		return usageError{"--limit must be 0 (all) or more"}
	}
	now := time.Now()
	q := audit.Query{Action: *action, Cursor: *cursor}
	var err error
	if q.Since, err = parseWhen("--since", *since, now); err != nil {
		return err
	}
	if q.Until, err = parseWhen("--until", *until, now); err != nil {
		return err
	}
	var fetch func(q audit.Query) (audit.Page, error)
	if *server != "" {
		ac, err := newAdminClient(ctx, *server, cf.serverDataDir(fs))
		if err != nil {
			return err
		}
		fetch = func(q audit.Query) (audit.Page, error) { return fetchAuditPage(ctx, ac, q) }
	} else {
		cfg, err := cf.load(fs)
		if err != nil {
			return err
		}
		st, err := storeopen.Open(ctx, &cfg, nil) // storage.backend: bolt or etcd
		if err != nil {
			return err
		}
		defer st.Close()
		log := audit.New(st, nil)
		fetch = func(q audit.Query) (audit.Page, error) { return log.Query(ctx, q) }
	}
	out := audit.Page{Events: []audit.Event{}}
	for {
		q.Limit = auditPageSize
		if *limit > 0 {
			q.Limit = min(auditPageSize, *limit-len(out.Events))
		}
		p, err := fetch(q)
		if err != nil {
			return err
		}
		out.Events = append(out.Events, p.Events...)
		out.NextCursor = p.NextCursor
		if p.NextCursor == "" || (*limit > 0 && len(out.Events) >= *limit) {
			break
		}
		q.Cursor = p.NextCursor
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if err := printAudit(stdout, out.Events); err != nil {
		return err
	}
	if out.NextCursor != "" {
		fmt.Fprintf(stderr, "signet: more events: add --cursor %s\n", out.NextCursor)
	}
	return nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageError{fmt.Sprintf("%s %q: expected an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h)", flag, v)}
}

func fetchAuditPage(ctx context.Context, ac *adminclient.Client, q audit.Query) (audit.Page, error) {
	v := url.Values{"limit": {strconv.Itoa(q.Limit)}}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	var p audit.Page
	err := ac.Do(ctx, http.MethodGet, "/admin/audit?"+v.Encode(), nil, &p)
	return p, err
}

func printAudit(w io.Writer, evs []audit.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tOUTCOME\tDETAIL")
	for _, ev := range evs {
		who := ev.Actor
		if ev.OSUser != "" {
			who += "(" + ev.OSUser + ")"
		}
		if ev.Replica != "" {
			who += "@" + ev.Replica
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), who, ev.Action,
			orDash(ev.Target), ev.Outcome, orDash(strings.ReplaceAll(ev.Detail, "\n", " ")))
	}
	return tw.Flush()
}
