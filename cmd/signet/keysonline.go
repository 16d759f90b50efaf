package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/signet-auth/signet/adminclient"
	"github.com/signet-auth/signet/keys"
)

// keysOnline runs a keys subcommand against a running server's admin API.
// The admin API answers every keys call with the key list after the change,
// in the same shape `keys list --json` prints offline.
func keysOnline(ctx context.Context, server, dataDir, sub, kid string, force, asJSON bool, stdout io.Writer) error {
	ac, err := newAdminClient(ctx, server, dataDir)
	if err != nil {
		return err
	}
	var out struct {
		Keys []keys.Info `json:"keys"`
	}
	switch sub {
	case "list":
		err = ac.Do(ctx, http.MethodGet, "/admin/keys", nil, &out)
	case "rotate":
		path := "/admin/keys/rotate"
		if force {
			path += "?force=true"
		}
		err = ac.Do(ctx, http.MethodPost, path, nil, &out)
	case "revoke":
		err = ac.Do(ctx, http.MethodPost, "/admin/keys/"+url.PathEscape(kid)+"/revoke", nil, &out)
	}
	var ae *adminclient.Error
	if sub == "rotate" && errors.As(err, &ae) && ae.Status == http.StatusConflict {
		// The admin API names its query parameter; here the flag is --force.
		reason := strings.TrimSuffix(ae.Description, " (force=true activates it anyway)")
		return fmt.Errorf("%s (--force activates it anyway)", reason)
	}
	if err != nil {
		return err
	}
	return printKeys(stdout, out.Keys, asJSON)
}
