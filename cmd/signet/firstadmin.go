package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/datadir"
)

// firstAdminClient is what `signet init` creates.
func firstAdminClient() clients.Client {
	return clients.Client{
		ID:         "admin",
		GrantTypes: []string{clients.GrantClientCredentials},
		Scopes:     []string{authority.AdminScope},
		Audiences:  []string{authority.AdminAudience},
	}
}

// ensureFirstClients runs on every start. On a store without clients it
// makes the first admin client, so that a newcomer can create clients with
// `signet clients create --server` without stopping the server for `signet
// init`. The secret goes to a 0600 file in the data directory and never to
// the log, except in --dev, which also makes the demo client and logs both.
// On etcd nothing is made: the replicas share the store but no directory,
// so the operator runs `signet init` as before.
func (m *Main) ensureFirstClients(ctx context.Context) error {
	c := &m.Config
	if c.Storage.Backend == "etcd" {
		if c.Dev {
			return m.ensureDemoClient(ctx)
		}
		return nil
	}
	reg := m.Server.Clients()
	var admin clients.Client
	var secret string
	var err error
	if c.Dev {
		// The demo client is the first; the admin client comes with it.
		created, derr := m.ensureDemoClientCreated(ctx)
		if derr != nil || !created {
			return derr
		}
		admin, secret, err = reg.Create(ctx, firstAdminClient())
	} else {
		admin, secret, err = reg.CreateFirst(ctx, firstAdminClient())
		if errors.Is(err, clients.ErrNotEmpty) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("first admin client: %w", err)
	}
	// With storage.bolt.path and keys.encryption_key_file set elsewhere,
	// nothing else may have made the data directory.
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return datadir.Error(c.DataDir, err, datadir.CurrentUser())
	}
	path := filepath.Join(c.DataDir, datadir.AdminCredentialsFile)
	if err := datadir.WriteAdminCredentials(path, datadir.AdminCredentials{ClientID: admin.ID, ClientSecret: secret}); err != nil {
		return err
	}
	_ = authority.NewAuditLog(m.Store, nil).Record(ctx, authority.AuditEvent{Actor: "system", Action: "clients.create",
		Target: admin.ID, Outcome: "ok", Detail: "first start: credentials in " + path})
	server := c.Issuer
	if !loopbackURL(server) {
		server = "http://" + m.pre.publicLn.Addr().String()
	}
	attrs := []slog.Attr{slog.String("client_id", admin.ID), slog.String("credentials_file", path),
		slog.String("next", "signet clients create --server "+server+" --id my-service --audience api (reads that file for a server on this machine)")}
	if c.Dev {
		attrs = append(attrs, slog.String("client_secret", secret))
	}
	m.Logger.LogAttrs(ctx, slog.LevelWarn, "first start: created the admin client; its credentials are in a file only this user can read (move them to your secret store and delete the file)", attrs...)
	return nil
}

// loopbackURL says whether server names this machine: only then may the
// CLI send it the credentials from the local data directory.
func loopbackURL(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	h := u.Hostname()
	ip := net.ParseIP(h)
	return h == "localhost" || ip != nil && ip.IsLoopback()
}
