package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signet-auth/signet/adminclient"
	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
)

const clientsUsage = "usage: signet clients create|list|get|update|delete|rotate-secret [ID] [--data-dir DIR | --server URL] [--json]"

// clientOps is what the clients command does, offline on a store or
// online through the admin API.
type clientOps interface {
	create(ctx context.Context, spec clients.Client) (admin.ClientWithSecret, error)
	list(ctx context.Context) ([]clients.Client, error)
	get(ctx context.Context, id string) (clients.Client, error)
	update(ctx context.Context, id string, p clients.Patch) (clients.Client, error)
	remove(ctx context.Context, id string) error
	rotate(ctx context.Context, id string, keep time.Duration) (admin.ClientWithSecret, error)
}

// listFlag is a repeatable string flag; each value may also hold several
// items separated by spaces ("--scope 'a b'"). Only the space separates,
// as in an OAuth scope (RFC 6749 section 3.3): a TAB or a no-break space
// stays inside an item, where validation refuses it, instead of quietly
// splitting it in two.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error {
	for item := range strings.SplitSeq(v, " ") {
		if item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// claimFlag collects --claim NAME=VALUE; VALUE is JSON when it parses as
// JSON, else a string.
type claimFlag map[string]json.RawMessage

func (c claimFlag) String() string { return "" }
func (c claimFlag) Set(v string) error {
	if v == "" { // update --claim '': no extra claims any more
		clear(c)
		return nil
	}
	name, val, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	if json.Valid([]byte(val)) {
		c[name] = json.RawMessage(val)
		return nil
	}
	b, _ := json.Marshal(val)
	c[name] = b
	return nil
}

// runClients is `signet clients create|list|get|delete|rotate-secret`.
func runClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{clientsUsage}
	}
	sub := args[0]
	fs := newFlagSet("clients "+sub, stderr)
	var cf configFlags
	cf.registerOffline(fs)
	server := fs.String("server", "", "talk to a running server at URL (admin credentials from SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET)")
	asJSON := new(bool)
	switch sub {
	case "list", "get", "update":
		fs.BoolVar(asJSON, "json", false, "print JSON instead of a table")
	case "create", "rotate-secret":
		// Accepted so that scripts written for list and get work here too.
		fs.BoolVar(asJSON, "json", false, "no effect: the id and the one-time secret are always printed as JSON")
	}
	setUsage(fs, map[string]string{"create": "--id ID --audience AUD [flags]", "list": "[flags]", "get": "ID [flags]",
		"update": "ID [flags]", "delete": "ID [flags]", "rotate-secret": "ID [flags]"}[sub])
	var described clientFlags
	var keep time.Duration
	nargs := 1
	switch sub {
	case "create":
		nargs = 0
		fs.StringVar(&described.spec.ID, "id", "", "client id (required): letters, digits, - . _ ~")
		fs.BoolVar(&described.spec.Public, "public", false, "a public client (SPA, mobile): no secret, token endpoint auth none, PKCE mandatory")
		described.register(fs, false)
	case "update":
		described.register(fs, true)
	case "list":
		nargs = 0
	case "get", "delete":
	case "rotate-secret":
		fs.DurationVar(&keep, "keep-old", 0, "keep accepting the old secret for this long (default: not at all)")
	default:
		return unknownSubcommand("clients", sub)
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != nargs {
		if nargs == 1 {
			return usageError{fmt.Sprintf("usage: signet clients %s ID", sub)}
		}
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	var spec clients.Client
	var patch clients.Patch
	var err error
	switch sub {
	case "create":
		if described.spec.ID == "" {
			return usageError{"create needs --id"}
		}
		if spec, err = described.client(); err != nil {
			return err
		}
	case "update":
		if patch, err = described.patch(fs); err != nil {
			return err
		}
	}

	ops, done, err := openClientOps(ctx, fs, &cf, *server)
	if err != nil {
		return err
	}
	defer done()
	err = clientsDo(ctx, sub, ops, fs.Arg(0), spec, patch, keep, *asJSON, stdout, stderr)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("client %q not found (signet clients list shows them)", fs.Arg(0))
	}
	return err
}

func clientsDo(ctx context.Context, sub string, ops clientOps, id string, spec clients.Client, patch clients.Patch, keep time.Duration, asJSON bool, stdout, stderr io.Writer) error {

	switch sub {
	case "create":
		cs, err := ops.create(ctx, spec)
		if err != nil {
			return err
		}
		return printSecret(stdout, stderr, cs)
	case "rotate-secret":
		cs, err := ops.rotate(ctx, id, keep)
		if err != nil {
			return err
		}
		return printSecret(stdout, stderr, cs)
	case "list":
		list, err := ops.list(ctx)
		if err != nil {
			return err
		}
		return printClients(stdout, list, asJSON)
	case "get":
		c, err := ops.get(ctx, id)
		if err != nil {
			return err
		}
		return printClients(stdout, []clients.Client{c}, asJSON)
	case "update":
		if patch == (clients.Patch{}) {
			return usageError{"update needs at least one flag to change (signet clients update --help lists them)"}
		}
		c, err := ops.update(ctx, id, patch)
		if err != nil {
			return err
		}
		return printClients(stdout, []clients.Client{c}, asJSON)
	default: // delete
		if err := ops.remove(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted client %s\n", id)
		return nil
	}
}

// openClientOps picks online (--server) or offline (the data directory of
// the configuration) and returns a function that releases it.
func openClientOps(ctx context.Context, fs *flag.FlagSet, cf *configFlags, server string) (clientOps, func(), error) {
	if server != "" {
		a, err := newAdminClient(ctx, server, cf.serverDataDir(fs))
		if err != nil {
			return nil, nil, err
		}
		return onlineClients{a}, func() {}, nil
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return nil, nil, err
	}
	st, err := storeopen.Open(ctx, &cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	ops := offlineClients{
		c: clients.New(st, clients.Options{
			Algorithms: cfg.Keys.Algorithms, DefaultTokenTTL: cfg.Parsed.DefaultTTL, MaxTokenTTL: cfg.Parsed.MaxTTL,
		}),
		audit: authority.NewAuditLog(st, nil),
	}
	return ops, func() { _ = st.Close() }, nil
}

// printSecret prints the one-time secret as JSON on stdout.
func printSecret(stdout, stderr io.Writer, cs admin.ClientWithSecret) error {
	out := struct {
		ClientID                string    `json:"client_id"`
		ClientSecret            string    `json:"client_secret"`
		PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	}{cs.ID, cs.ClientSecret, cs.PreviousSecretExpiresAt}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if cs.Public || cs.ClientSecret == "" { // public or private_key_jwt: nothing secret to show
		return enc.Encode(struct {
			ClientID string `json:"client_id"`
			Public   bool   `json:"public,omitempty"`
		}{cs.ID, cs.Public})
	}
	if err := enc.Encode(out); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "signet: store the secret now; it is not shown again")
	return nil
}

func printClients(w io.Writer, list []clients.Client, asJSON bool) error {
	if asJSON {
		if list == nil {
			list = []clients.Client{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tGRANTS\tSCOPES\tAUDIENCES\tALG\tTTL\tSTATUS\tUPDATED")
	for _, c := range list {
		status := "enabled"
		if c.Disabled {
			status = "disabled"
		}
		if c.Dynamic { // registered itself (RFC 7591)
			status += ",dynamic"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(strings.Join(c.GrantTypes, ",")),
			orDash(strings.Join(c.Scopes, " ")), strings.Join(c.Audiences, ","), c.SigningAlg,
			time.Duration(c.AccessTokenTTL), status, fmtTime(c.UpdatedAt))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// offlineClients works on the store directly and audits as "cli".
type offlineClients struct {
	c     *clients.Registry
	audit *authority.AuditLog
}

func (o offlineClients) record(ctx context.Context, action, target string, err error) {
	ev := authority.AuditEvent{Actor: "cli", OSUser: osUserName(), Action: action, Target: target, Outcome: "ok"}
	if err != nil {
		ev.Outcome, ev.Detail = "error", err.Error()
	}
	_ = o.audit.Record(ctx, ev) // best effort: the action itself is done
}

func (o offlineClients) create(ctx context.Context, spec clients.Client) (admin.ClientWithSecret, error) {
	c, secret, err := o.c.Create(ctx, spec)
	o.record(ctx, "clients.create", spec.ID, err)
	if errors.Is(err, clients.ErrExists) {
		err = fmt.Errorf("client %q already exists (signet clients rotate-secret %s gives it a new secret)", spec.ID, spec.ID)
	}
	return admin.ClientWithSecret{Client: c, ClientSecret: secret}, err
}

func (o offlineClients) list(ctx context.Context) ([]clients.Client, error) { return o.c.List(ctx) }

func (o offlineClients) get(ctx context.Context, id string) (clients.Client, error) {
	return o.c.Get(ctx, id)
}

func (o offlineClients) update(ctx context.Context, id string, p clients.Patch) (clients.Client, error) {
	c, err := o.c.Update(ctx, id, p)
	o.record(ctx, "clients.update", id, err)
	return c, err
}

func (o offlineClients) remove(ctx context.Context, id string) error {
	err := o.c.Delete(ctx, id)
	o.record(ctx, "clients.delete", id, err)
	return err
}

func (o offlineClients) rotate(ctx context.Context, id string, keep time.Duration) (admin.ClientWithSecret, error) {
	c, secret, err := o.c.RotateSecret(ctx, id, keep)
	o.record(ctx, "clients.rotate_secret", id, err)
	return admin.ClientWithSecret{Client: c, ClientSecret: secret}, err
}

// onlineClients goes through the admin API.
type onlineClients struct{ a *adminclient.Client }

func (o onlineClients) create(ctx context.Context, spec clients.Client) (admin.ClientWithSecret, error) {
	var out admin.ClientWithSecret
	err := o.a.Do(ctx, http.MethodPost, "/admin/clients", spec, &out)
	return out, err
}

func (o onlineClients) list(ctx context.Context) ([]clients.Client, error) {
	var out struct {
		Clients []clients.Client `json:"clients"`
	}
	err := o.a.Do(ctx, http.MethodGet, "/admin/clients", nil, &out)
	return out.Clients, err
}

func (o onlineClients) get(ctx context.Context, id string) (clients.Client, error) {
	var out clients.Client
	err := o.a.Do(ctx, http.MethodGet, "/admin/clients/"+url.PathEscape(id), nil, &out)
	return out, err
}

func (o onlineClients) update(ctx context.Context, id string, p clients.Patch) (clients.Client, error) {
	var out clients.Client
	err := o.a.Do(ctx, http.MethodPatch, "/admin/clients/"+url.PathEscape(id), p, &out)
	return out, err
}

func (o onlineClients) remove(ctx context.Context, id string) error {
	return o.a.Do(ctx, http.MethodDelete, "/admin/clients/"+url.PathEscape(id), nil, nil)
}

func (o onlineClients) rotate(ctx context.Context, id string, keep time.Duration) (admin.ClientWithSecret, error) {
	var out admin.ClientWithSecret
	err := o.a.Do(ctx, http.MethodPost, "/admin/clients/"+url.PathEscape(id)+"/secret", admin.SecretRotation{KeepPrevious: clients.Duration(keep)}, &out)
	return out, err
}

// keyFlags are the private_key_jwt flags of create and update.
type keyFlags struct {
	file, uri string
	algs      listFlag
	federated federatedFlag
}

// federatedFlag collects --federated ISSUER=SUBJECT. An issuer is a URL
// without query (OpenID Connect Discovery §3), so the first = ends it.
type federatedFlag []clients.FederatedIdentity

func (f *federatedFlag) String() string { return fmt.Sprint(len(*f)) }

func (f *federatedFlag) Set(v string) error {
	if v == "" { // update --federated '': no identity any more
		*f = federatedFlag{}
		return nil
	}
	iss, sub, ok := strings.Cut(v, "=")
	if !ok || iss == "" || sub == "" {
		return fmt.Errorf("expected ISSUER=SUBJECT, such as https://kubernetes.default.svc.cluster.local=system:serviceaccount:payments:api")
	}
	*f = append(*f, clients.FederatedIdentity{Issuer: iss, Subject: sub})
	return nil
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.Var(&k.federated, "federated", "workload identity: ISSUER=SUBJECT, a token of that trusted issuer (federation: section) for that subject authenticates as the client; SUBJECT may end in a whole-segment * (system:serviceaccount:payments:*); repeatable, replaces the list on update ('' empties it)")
	fs.StringVar(&k.file, "jwks-file", "", "private_key_jwt: a file with the client's public keys as a JWK Set ({\"keys\":[...]}); - reads stdin")
	fs.StringVar(&k.uri, "jwks-uri", "", "private_key_jwt: an https URL serving the client's JWK Set (fetched under the outbound: rules)")
	fs.Var(&k.algs, "auth-signing-alg", "private_key_jwt: an algorithm the client's assertions may use, repeatable (default every asymmetric one)")
}

// jwks reads --jwks-file, nil when it is not set.
func (k *keyFlags) jwks() (json.RawMessage, error) {
	if k.file == "" {
		return nil, nil
	}
	var b []byte
	var err error
	if k.file == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	} else {
		b, err = os.ReadFile(k.file)
	}
	if err != nil {
		return nil, fmt.Errorf("--jwks-file: %w", err)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--jwks-file %s: not JSON; expected a JWK Set such as {\"keys\":[{\"kty\":\"EC\",...}]}", k.file)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, fmt.Errorf("--jwks-file %s: %w", k.file, err)
	}
	return compact.Bytes(), nil
}
