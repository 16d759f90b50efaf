package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/totp"
)

// TestRun_UsersFactors: an operator sees and resets a user's second
// factors through the admin API (`signet users factors --server`), the
// reset is audited with the admin client as actor, and a client is made to
// require a second factor with `signet clients update --require-second-factor`.
func TestRun_UsersFactors(t *testing.T) {
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
	if _, _, err := usersCmd(t, "s3cret password\n", "create", "--server", m.URL(), "--username", "alice"); err != nil {
		t.Fatal(err)
	}
	o, _, err := usersCmd(t, "", "factors", "--server", m.URL(), "alice")
	if err != nil || !strings.Contains(o, "authenticator app off") {
		t.Fatalf("factors before set-up = %v %q", err, o)
	}
	u, err := m.Server.Users().Lookup(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	f := mfa.New(m.Store, m.kek, nil)
	secret, err := f.BeginTOTP(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ConfirmTOTP(t.Context(), u, totp.Code(secret, totp.Step(time.Now()))); err != nil {
		t.Fatal(err)
	}
	o, _, err = usersCmd(t, "", "factors", "--server", m.URL(), "--json", "alice")
	var st mfa.Status
	if err != nil || json.Unmarshal([]byte(o), &st) != nil || !st.TOTP || st.RecoveryCodes != mfa.RecoveryCodes {
		t.Fatalf("factors after set-up = %v %q", err, o)
	}
	if strings.Contains(o, "sealed") || strings.Contains(o, totp.Encode(secret)) {
		t.Fatalf("factors output shows the secret: %s", o)
	}
	o, _, err = usersCmd(t, "", "factors", "--server", m.URL(), "--reset", "alice")
	if err != nil || !strings.Contains(o, "removed the second factors of alice") {
		t.Fatalf("reset = %v %q", err, o)
	}
	if st, _ := f.Status(t.Context(), u); st.TOTP || st.RecoveryCodes != 0 {
		t.Fatalf("after reset: %+v", st)
	}
	p := auditCmd(t, "--server", m.URL(), "--action", "users.factors_reset")
	if len(p.Events) != 1 || p.Events[0].Actor != admin.ClientID || p.Events[0].Target != u || p.Events[0].Detail != "removed=true" {
		t.Fatalf("audit of the reset = %+v", p.Events)
	}
	if o, _, err := usersCmd(t, "", "factors", "--server", m.URL(), "--reset", "alice"); err != nil || !strings.Contains(o, "had no second factor") {
		t.Fatalf("second reset = %v %q", err, o)
	}

	// A deleted user's sealed secret goes with them.
	if _, err := f.BeginTOTP(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if _, _, err := usersCmd(t, "", "delete", "--server", m.URL(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PendingTOTP(t.Context(), u); !errors.Is(err, mfa.ErrNoEnrolment) {
		t.Fatalf("TOTP record of a deleted user: %v", err)
	}

	if _, _, err := clientsCmd(t, "create", "--server", m.URL(), "--id", "web", "--grant", "authorization_code", "--scope", "openid",
		"--audience", "api", "--redirect-uri", "https://app.example/cb"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := clientsCmd(t, "update", "--server", m.URL(), "--require-second-factor", "web"); err != nil {
		t.Fatal(err)
	}
	o, _, err = clientsCmd(t, "get", "--server", m.URL(), "--json", "web")
	var got []clients.Client
	if err != nil || json.Unmarshal([]byte(o), &got) != nil || len(got) != 1 || !got[0].RequireSecondFactor {
		t.Fatalf("client after --require-second-factor = %v %s", err, o)
	}
}

// TestRun_UsersRequireSecondFactor: an operator requires a second factor
// of a user and stops requiring it with `signet users factors --require`
// (and --require=false), offline on the data directory and online through
// the admin API (PATCH /admin/users/{id} require_second_factor); each
// change is audited, with who made it and the new value.
func TestRun_UsersRequireSecondFactor(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	if _, _, err := usersCmd(t, "s3cret password\n", "create", "--data-dir", c.DataDir, "--username", "alice"); err != nil {
		t.Fatal(err)
	}
	o, _, err := usersCmd(t, "", "factors", "--data-dir", c.DataDir, "--require", "alice")
	if err != nil || !strings.Contains(o, "a second factor is required of alice") {
		t.Fatalf("offline --require = %v %q", err, o)
	}
	if o, _, err := usersCmd(t, "", "factors", "--data-dir", c.DataDir, "alice"); err != nil || !strings.Contains(o, "required by the operator since") {
		t.Fatalf("factors of a required user = %v %q", err, o)
	}
	p := auditCmd(t, "--data-dir", c.DataDir, "--action", "users.update")
	if len(p.Events) != 1 || p.Events[0].Actor != "cli" || !strings.Contains(p.Events[0].Detail, "require_second_factor=true") {
		t.Fatalf("audit of the offline change = %+v", p.Events)
	}

	m, _ := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	u, err := m.Server.Users().Lookup(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Server.Users().Get(t.Context(), u); !got.RequireSecondFactor || got.RequireSecondFactorSince.IsZero() {
		t.Fatalf("user after the offline --require: %+v", got)
	}
	o, _, err = usersCmd(t, "", "factors", "--server", m.URL(), "--require=false", "alice")
	if err != nil || !strings.Contains(o, "no longer required") {
		t.Fatalf("online --require=false = %v %q", err, o)
	}
	if got, _ := m.Server.Users().Get(t.Context(), u); got.RequireSecondFactor || !got.RequireSecondFactorSince.IsZero() {
		t.Fatalf("user after --require=false: %+v", got)
	}
	if _, _, err := usersCmd(t, "", "factors", "--server", m.URL(), "--require", "alice"); err != nil {
		t.Fatal(err)
	}
	p = auditCmd(t, "--server", m.URL(), "--action", "users.update")
	if len(p.Events) != 3 || p.Events[0].Actor != admin.ClientID || p.Events[0].Target != u ||
		!strings.Contains(p.Events[0].Detail, "require_second_factor=true") || !strings.Contains(p.Events[1].Detail, "require_second_factor=false") {
		t.Fatalf("audit of the online changes = %+v", p.Events)
	}
	if got, _ := m.Server.Users().Get(t.Context(), u); !got.RequireSecondFactor {
		t.Fatalf("user after the online --require: %+v", got)
	}
}
