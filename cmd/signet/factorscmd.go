package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/users"
)

// userFactors is `signet users factors USER [--reset]`.
func userFactors(ctx context.Context, ops userOps, u users.User, reset, asJSON bool, stdout io.Writer) error {
	if reset {
		had, err := ops.resetFactors(ctx, u.ID)
		if err != nil {
			return err
		}
		if !had {
			fmt.Fprintf(stdout, "%s (%s) had no second factor\n", u.Username, u.ID)
			return nil
		}
		fmt.Fprintf(stdout, "removed the second factors of %s (%s): they sign in with the password and can set up a new app on the account page\n", u.Username, u.ID)
		return nil
	}
	st, err := ops.factors(ctx, u.ID)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	app := "off"
	if st.TOTP {
		app = "on since " + fmtTime(st.TOTPSince)
	}
	fmt.Fprintf(stdout, "%s (%s): authenticator app %s; %d recovery codes left; %d passkeys\n", u.Username, u.ID, app, st.RecoveryCodes, st.Passkeys)
	return nil
}

func (o offlineUsers) factors(ctx context.Context, id string) (mfa.Status, error) {
	return mfa.ReadStatus(ctx, o.store, id)
}

func (o offlineUsers) resetFactors(ctx context.Context, id string) (bool, error) {
	had, err := mfa.Reset(ctx, o.store, id)
	o.record(ctx, "users.factors_reset", id, fmt.Sprintf("removed=%t", had), err)
	return had, err
}

func (o onlineUsers) factors(ctx context.Context, id string) (mfa.Status, error) {
	var out mfa.Status
	err := o.a.Do(ctx, http.MethodGet, "/admin/users/"+url.PathEscape(id)+"/factors", nil, &out)
	return out, err
}

func (o onlineUsers) resetFactors(ctx context.Context, id string) (bool, error) {
	var out admin.FactorsReset
	err := o.a.Do(ctx, http.MethodDelete, "/admin/users/"+url.PathEscape(id)+"/factors", nil, &out)
	return out.Removed, err
}
