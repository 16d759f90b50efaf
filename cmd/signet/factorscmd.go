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

// userFactors is `signet users factors USER [--reset] [--require[=false]]`.
func userFactors(ctx context.Context, ops userOps, u users.User, reset bool, require *bool, asJSON bool, stdout io.Writer) error {
	if require != nil {
		nu, err := ops.requireFactor(ctx, u.ID, *require)
		if err != nil {
			return err
		}
		if !nu.RequireSecondFactor {
			fmt.Fprintf(stdout, "a second factor is no longer required of %s (%s) by the operator (login.second_factor.required_for may still require one)\n", u.Username, u.ID)
			return nil
		}
		fmt.Fprintf(stdout, "a second factor is required of %s (%s) since %s: they set one up within login.second_factor.grace of then, and are asked for it at every sign-in\n",
			u.Username, u.ID, fmtTime(nu.RequireSecondFactorSince))
		if !reset {
			return nil
		}
	}
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
	required := ""
	if u.RequireSecondFactor {
		required = "; required by the operator since " + fmtTime(u.RequireSecondFactorSince)
	}
	fmt.Fprintf(stdout, "%s (%s): authenticator app %s; %d recovery codes left; %d passkeys%s\n", u.Username, u.ID, app, st.RecoveryCodes, st.Passkeys, required)
	return nil
}

// requireDetail is the audit detail of the requirement's change, as the
// admin API writes it for PATCH /admin/users/{id}.
func requireDetail(on bool) string {
	return fmt.Sprintf("fields=require_second_factor require_second_factor=%t", on)
}

func (o offlineUsers) requireFactor(ctx context.Context, id string, on bool) (users.User, error) {
	u, _, err := o.u.Update(ctx, id, users.Patch{RequireSecondFactor: &on})
	o.record(ctx, "users.update", id, requireDetail(on), err)
	return u, err
}

func (o onlineUsers) requireFactor(ctx context.Context, id string, on bool) (users.User, error) {
	var out users.User
	err := o.a.Do(ctx, http.MethodPatch, "/admin/users/"+url.PathEscape(id), users.Patch{RequireSecondFactor: &on}, &out)
	return out, err
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
