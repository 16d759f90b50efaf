package main

import (
	"bufio"
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

	"golang.org/x/term"

	"github.com/signet-auth/signet/adminclient"
	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
	"github.com/signet-auth/signet/users"
)

const usersUsage = "usage: signet users create --username NAME [--email E] [--role R] [--name N] [--email-verified] [--claim NAME=VALUE] | list | delete USER | set-password USER | logout USER | consents USER [--withdraw CLIENT] | factors USER [--reset] [--require[=false]] [--data-dir DIR | --server URL] [--json]\n" +
	"USER is a user id or a username. Passwords are read from stdin when it is not a terminal, else prompted for; never from a flag."

// userOps is what the users command does, offline on a store or online
// through the admin API.
type userOps interface {
	create(ctx context.Context, nu users.NewUser) (users.User, error)
	list(ctx context.Context) ([]users.User, error)
	// resolve finds a user by id or username.
	resolve(ctx context.Context, idOrName string) (users.User, error)
	remove(ctx context.Context, id string) error
	setPassword(ctx context.Context, id, password string) error
	// logout revokes every session of the user and records a cutoff.
	logout(ctx context.Context, id string) (int, error)
	// consents lists what the user allowed third-party clients.
	consents(ctx context.Context, id string) ([]sessions.Consent, error)
	// withdraw forgets a consent and revokes that client's refresh tokens.
	withdraw(ctx context.Context, id, client string) (admin.ConsentWithdrawal, error)
	// factors reads what second factors the user set up; resetFactors
	// removes them (factorscmd.go).
	factors(ctx context.Context, id string) (mfa.Status, error)
	resetFactors(ctx context.Context, id string) (bool, error)
	// requireFactor sets or clears the operator's requirement of a
	// second factor of the user.
	requireFactor(ctx context.Context, id string, on bool) (users.User, error)
}

// runUsers is `signet users create|list|delete|set-password|logout`.
func runUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usersCommand(ctx, args, os.Stdin, stdout, stderr)
}

func usersCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usersUsage}
	}
	sub := args[0]
	fs := newFlagSet("users "+sub, stderr)
	var cf configFlags
	cf.registerOffline(fs)
	server := fs.String("server", "", "talk to a running server at URL (admin credentials from SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET)")
	asJSON := new(bool)
	if sub == "create" || sub == "list" {
		fs.BoolVar(asJSON, "json", false, "print JSON instead of a table")
	}
	setUsage(fs, map[string]string{"create": "--username NAME [flags] (password on stdin, or prompted)", "list": "[flags]",
		"delete": "USER [flags]", "set-password": "USER [flags] (password on stdin, or prompted)", "logout": "USER [flags]", "consents": "USER [--withdraw CLIENT] [flags]", "factors": "USER [--reset] [--require[=false]] [flags]"}[sub])
	var nu users.NewUser
	var roles listFlag
	claims := claimFlag{}
	var withdraw *string
	reset, require := new(bool), new(bool)
	nargs := 1
	switch sub {
	case "create":
		nargs = 0
		fs.StringVar(&nu.Username, "username", "", "username (required, unique regardless of case)")
		fs.StringVar(&nu.Email, "email", "", "email address (in access tokens with scope email)")
		fs.Var(&roles, "role", "role, repeatable (in every access token of the user)")
		fs.Var(claims, "claim", "profile claim NAME=VALUE, repeatable (VALUE is a JSON string or array of strings, or a string; in access tokens with scope profile)")
		fs.BoolVar(&nu.Disabled, "disabled", false, "create the user disabled")
		fs.StringVar(&nu.Name, "name", "", "full name (claim name, scope profile)")
		fs.BoolVar(&nu.EmailVerified, "email-verified", false, "the email address is known to be the user's (claim email_verified)")
	case "list":
		nargs = 0
	case "delete", "set-password", "logout":
	case "consents":
		withdraw = fs.String("withdraw", "", "withdraw the consent given to this client id (its refresh tokens for the user are revoked)")
	case "factors":
		fs.BoolVar(reset, "reset", false, "remove the user's second factors (authenticator app, recovery codes); audited")
		fs.BoolVar(require, "require", false, "require a second factor of the user, who then sets one up within login.second_factor.grace (--require=false to stop); audited")
		fs.BoolVar(asJSON, "json", false, "print JSON instead of text")
	default:
		return unknownSubcommand("users", sub)
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != nargs {
		if nargs == 1 {
			return usageError{fmt.Sprintf("usage: signet users %s USER", sub)}
		}
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if sub == "create" && nu.Username == "" {
		return usageError{"create needs --username"}
	}
	nu.Roles = roles
	if len(claims) > 0 {
		nu.Claims = claims
	}

	// Read the password before opening anything: a prompt must not hold
	// the database lock.
	var password string
	if sub == "create" || sub == "set-password" {
		var err error
		if password, err = readPassword(stdin, stderr); err != nil {
			return err
		}
	}
	ops, done, err := openUserOps(ctx, fs, &cf, *server)
	if err != nil {
		return err
	}
	defer done()

	switch sub {
	case "create":
		nu.Password = password
		u, err := ops.create(ctx, nu)
		if err != nil {
			return err
		}
		return printUsers(stdout, []users.User{u}, *asJSON)
	case "list":
		list, err := ops.list(ctx)
		if err != nil {
			return err
		}
		return printUsers(stdout, list, *asJSON)
	}
	u, err := ops.resolve(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if sub == "consents" {
		if *withdraw != "" {
			w, err := ops.withdraw(ctx, u.ID, *withdraw)
			if err != nil {
				return err
			}
			if !w.Withdrawn && w.FamiliesRevoked == 0 {
				fmt.Fprintf(stdout, "%s had no consent for %s\n", u.Username, *withdraw)
				return nil
			}
			fmt.Fprintf(stdout, "withdrew the consent of %s for %s: %d sessions of that client revoked\n", u.Username, *withdraw, w.FamiliesRevoked)
			return nil
		}
		list, err := ops.consents(ctx, u.ID)
		if err != nil {
			return err
		}
		return printConsents(stdout, list, *asJSON)
	}
	if sub == "factors" {
		var req *bool // set only when --require was given
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "require" {
				req = require
			}
		})
		return userFactors(ctx, ops, u, *reset, req, *asJSON, stdout)
	}
	if sub == "logout" {
		n, err := ops.logout(ctx, u.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "logged out %s (%s): %d sessions revoked; its access tokens issued before now are on the revocation feed\n", u.Username, u.ID, n)
		return nil
	}
	if sub == "delete" {
		if err := ops.remove(ctx, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s (%s); its sessions are revoked\n", u.Username, u.ID)
		return nil
	}
	if err := ops.setPassword(ctx, u.ID, password); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "password of %s (%s) changed; its sessions are revoked\n", u.Username, u.ID)
	return nil
}

// readPassword reads a password from stdin: the first line when stdin is
// not a terminal, else from a prompt without echo, twice.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Repeat password: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords do not match")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on stdin (pipe it in, or run in a terminal to be prompted)")
	}
	return line, nil
}

func openUserOps(ctx context.Context, fs *flag.FlagSet, cf *configFlags, server string) (userOps, func(), error) {
	if server != "" {
		a, err := newAdminClient(ctx, server, cf.serverDataDir(fs))
		if err != nil {
			return nil, nil, err
		}
		return onlineUsers{a}, func() {}, nil
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return nil, nil, err
	}
	st, err := storeopen.Open(ctx, &cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	ops := offlineUsers{store: st, u: users.New(st, users.PasswordParams{}, nil), audit: authority.NewAuditLog(st, nil)}
	return ops, func() { _ = st.Close() }, nil
}

func printUsers(w io.Writer, list []users.User, asJSON bool) error {
	if asJSON {
		if list == nil {
			list = []users.User{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tROLES\tSTATUS\tUPDATED")
	for _, u := range list {
		status := "enabled"
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Username, orDash(u.Email), orDash(strings.Join(u.Roles, ",")), status, fmtTime(u.UpdatedAt))
	}
	return tw.Flush()
}

func printConsents(w io.Writer, list []sessions.Consent, asJSON bool) error {
	if asJSON {
		if list == nil {
			list = []sessions.Consent{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tSCOPES\tGRANTED")
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ClientID, strings.Join(c.Scopes, " "), fmtTime(c.GrantedAt))
	}
	return tw.Flush()
}

// offlineUsers works on the store directly and audits as "cli".
type offlineUsers struct {
	store storage.Store
	u     *users.Registry
	audit *authority.AuditLog
}

func (o offlineUsers) record(ctx context.Context, action, target, detail string, err error) {
	ev := authority.AuditEvent{Actor: "cli", OSUser: osUserName(), Action: action, Target: target, Outcome: "ok", Detail: detail}
	if err != nil {
		ev.Outcome, ev.Detail = "error", err.Error()
	}
	_ = o.audit.Record(ctx, ev) // best effort: the action itself is done
}

func (o offlineUsers) create(ctx context.Context, nu users.NewUser) (users.User, error) {
	u, err := o.u.Create(ctx, nu)
	o.record(ctx, "users.create", nu.Username, "id="+u.ID, err)
	if errors.Is(err, users.ErrExists) {
		err = fmt.Errorf("user %q already exists (usernames are unique regardless of case and width)", nu.Username)
	}
	return u, err
}

func (o offlineUsers) list(ctx context.Context) ([]users.User, error) { return o.u.List(ctx) }

func (o offlineUsers) resolve(ctx context.Context, s string) (users.User, error) {
	u, err := o.u.Get(ctx, s)
	if errors.Is(err, storage.ErrNotFound) {
		id, lerr := o.u.Lookup(ctx, s)
		if lerr != nil {
			return users.User{}, fmt.Errorf("no user with id or username %q", s)
		}
		return o.u.Get(ctx, id)
	}
	return u, err
}

func (o offlineUsers) remove(ctx context.Context, id string) error {
	err := o.u.Delete(ctx, id)
	if err == nil {
		err = mfa.Forget(ctx, o.store, id) // the sealed TOTP secret goes with the user
	}
	if err == nil {
		_, err = authority.RevokeSessions(ctx, o.store, id, time.Now())
	}
	o.record(ctx, "users.delete", id, "", err)
	return err
}

func (o offlineUsers) setPassword(ctx context.Context, id, password string) error {
	err := o.u.SetPassword(ctx, id, users.PasswordChange{Password: password})
	if err == nil {
		_, err = authority.RevokeSessions(ctx, o.store, id, time.Now())
	}
	o.record(ctx, "users.set_password", id, "", err)
	return err
}

func (o offlineUsers) logout(ctx context.Context, id string) (int, error) {
	n, err := authority.RevokeSessions(ctx, o.store, id, time.Now())
	o.record(ctx, "users.logout", id, fmt.Sprintf("families_revoked=%d", n), err)
	return n, err
}

func (o offlineUsers) consents(ctx context.Context, id string) ([]sessions.Consent, error) {
	return authority.Consents(ctx, o.store, id) // live ones: of clients that still exist, as the instance they are now
}

func (o offlineUsers) withdraw(ctx context.Context, id, client string) (admin.ConsentWithdrawal, error) {
	found, n, err := authority.WithdrawConsent(ctx, o.store, id, client, time.Now())
	o.record(ctx, "users.consent_withdraw", id, fmt.Sprintf("client=%s withdrawn=%t families_revoked=%d", client, found, n), err)
	return admin.ConsentWithdrawal{Withdrawn: found, FamiliesRevoked: n}, err
}

// onlineUsers goes through the admin API.
type onlineUsers struct{ a *adminclient.Client }

func (o onlineUsers) create(ctx context.Context, nu users.NewUser) (users.User, error) {
	var out users.User
	err := o.a.Do(ctx, http.MethodPost, "/admin/users", nu, &out)
	return out, err
}

func (o onlineUsers) list(ctx context.Context) ([]users.User, error) {
	var out struct {
		Users []users.User `json:"users"`
	}
	err := o.a.Do(ctx, http.MethodGet, "/admin/users", nil, &out)
	return out.Users, err
}

func (o onlineUsers) resolve(ctx context.Context, s string) (users.User, error) {
	var u users.User
	err := o.a.Do(ctx, http.MethodGet, "/admin/users/"+url.PathEscape(s), nil, &u)
	var ae *adminclient.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		return u, err
	}
	list, err := o.list(ctx)
	if err != nil {
		return users.User{}, err
	}
	for _, u := range list {
		if strings.EqualFold(u.Username, s) {
			return u, nil
		}
	}
	return users.User{}, fmt.Errorf("no user with id or username %q", s)
}

func (o onlineUsers) remove(ctx context.Context, id string) error {
	return o.a.Do(ctx, http.MethodDelete, "/admin/users/"+url.PathEscape(id), nil, nil)
}

func (o onlineUsers) setPassword(ctx context.Context, id, password string) error {
	return o.a.Do(ctx, http.MethodPost, "/admin/users/"+url.PathEscape(id)+"/password", users.PasswordChange{Password: password}, nil)
}

func (o onlineUsers) logout(ctx context.Context, id string) (int, error) {
	var out admin.LogoutResult
	err := o.a.Do(ctx, http.MethodPost, "/admin/users/"+url.PathEscape(id)+"/logout", nil, &out)
	return out.FamiliesRevoked, err
}

func (o onlineUsers) consents(ctx context.Context, id string) ([]sessions.Consent, error) {
	var out struct {
		Consents []sessions.Consent `json:"consents"`
	}
	err := o.a.Do(ctx, http.MethodGet, "/admin/users/"+url.PathEscape(id)+"/consents", nil, &out)
	return out.Consents, err
}

func (o onlineUsers) withdraw(ctx context.Context, id, client string) (admin.ConsentWithdrawal, error) {
	var out admin.ConsentWithdrawal
	err := o.a.Do(ctx, http.MethodDelete, "/admin/users/"+url.PathEscape(id)+"/consents/"+url.PathEscape(client), nil, &out)
	return out, err
}
