package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storeopen"
)

// runInit is `signet init`: on a store with no clients it creates the first
// admin client (client_credentials, scope signet:admin, audience
// signet-admin) and prints its id and secret once as JSON. Everything else
// can then be done with `signet clients --server` and that client.
func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init", stderr)
	var cf configFlags
	cf.registerOffline(fs)
	id := fs.String("id", "admin", "client id of the admin client")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return err
	}
	st, err := storeopen.Open(ctx, &cfg, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := clients.New(st, clients.Options{
		Algorithms: cfg.Keys.Algorithms, DefaultTokenTTL: cfg.Parsed.DefaultTTL, MaxTokenTTL: cfg.Parsed.MaxTTL,
	})
	c, secret, err := reg.CreateFirst(ctx, clients.Client{
		ID:         *id,
		GrantTypes: []string{clients.GrantClientCredentials},
		Scopes:     []string{authority.AdminScope},
		Audiences:  []string{authority.AdminAudience},
	})
	if errors.Is(err, clients.ErrNotEmpty) {
		return fmt.Errorf("%s already has clients: init only creates the first admin client (use `signet clients create`)", storeopen.Name(&cfg))
	}
	if err != nil {
		return err
	}
	_ = authority.NewAuditLog(st, nil).Record(ctx, authority.AuditEvent{Actor: "cli", OSUser: osUserName(), Action: "clients.create", Target: c.ID, Outcome: "ok", Detail: "signet init"})
	return printSecret(stdout, stderr, admin.ClientWithSecret{Client: c, ClientSecret: secret})
}
