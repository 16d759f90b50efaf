package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/signet-auth/signet/adminclient"
	"github.com/signet-auth/signet/datadir"
)

// newAdminClient exchanges admin client credentials for a signet:admin
// token (client_credentials, audience signet-admin) at server. The
// credentials come from SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET or, for
// a server on this machine when those are unset, from the file the first
// start wrote into dataDir ("" for none).
func newAdminClient(ctx context.Context, server, dataDir string) (*adminclient.Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http(s) URL such as http://localhost:8080", server)
	}
	id, secret := os.Getenv("SIGNET_CLIENT_ID"), os.Getenv("SIGNET_CLIENT_SECRET")
	from := "SIGNET_CLIENT_ID"
	if id == "" && secret == "" && dataDir != "" && loopbackURL(server) {
		cs, path, err := datadir.ReadAdminCredentials(dataDir)
		switch {
		case err == nil:
			id, secret, from = cs.ClientID, cs.ClientSecret, path
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	if id == "" || secret == "" {
		msg := "--server needs admin credentials in SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET (signet init prints them)"
		if dataDir != "" && loopbackURL(server) {
			msg += "; for a server on this machine they are also read from " + filepath.Join(dataDir, datadir.AdminCredentialsFile) +
				", which the first start of signet serve on an empty store writes (none there; pass --data-dir if the server uses another)"
		}
		return nil, errors.New(msg)
	}
	ac, err := adminclient.New(ctx, server, id, secret)
	if err != nil {
		return nil, fmt.Errorf("%w (credentials from %s)", err, from)
	}
	return ac, nil
}
