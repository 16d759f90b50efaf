package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/drill"
)

// TestRun_Drill runs the drill against a real server: three kinds of
// verifier, a rotation and an emergency revocation of the retired key. No
// valid token may be rejected, the drill's clients are removed afterwards,
// and the table names every verifier.
func TestRun_Drill(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, func(c *config.Config) { c.JWKS.MaxAge = "1s" })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	// The issuer must be the URL verifiers reach: restart on the listener's URL.
	c.Issuer = m.URL()
	c.HTTP.Addr = m.Addr()
	m.Close()
	m, logs := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	before := len(m.Keys.Current())
	var stdout, stderr bytes.Buffer
	err = runDrill(t.Context(), []string{"--issuer", m.URL(), "--duration", "4s", "--force", "--revoke-retired", "--json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("drill: %v\n%s\n%s", err, stderr.String(), stdout.String())
	}
	var r drill.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if r.Tokens < 10 || len(r.Rotated) != 2 || len(r.RevokedKIDs) != 2 || r.JWKSMaxAge != "1s" {
		t.Errorf("report = %+v: want tokens, a rotation of both algorithms, a revoked kid of each and the max-age", r)
	}
	names := map[string]bool{}
	for _, x := range r.Results {
		names[x.Verifier] = true
		if x.Checked == 0 || x.Rejected != 0 {
			t.Errorf("%s: checked %d, rejected %d (%s)", x.Verifier, x.Checked, x.Rejected, x.FirstError)
		}
		// Every verifier that still accepts a revoked key says why, with
		// the cache lifetime behind it.
		still := len(x.RevokedKeyRejectedAfter) < len(r.RevokedKIDs)
		if still != (x.StillAccepted != "") {
			t.Errorf("%s: refused %v of %v, explanation %q", x.Verifier, x.RevokedKeyRejectedAfter, r.RevokedKIDs, x.StillAccepted)
		}
	}
	for _, n := range []string{"signet jwks.Verifier", "jwx jwk.Cache", "go-oidc RemoteKeySet"} {
		if !names[n] {
			t.Errorf("no result for %s", n)
		}
	}
	list, err := m.Server.Clients().List(t.Context())
	if err != nil || len(list) != 1 {
		t.Errorf("clients after the drill = %v (%v): want only the admin client\n%s", list, err, stderr.String())
	}
	revoked := map[string]string{}
	for _, k := range m.Keys.Current() {
		if k.State == "revoked" {
			revoked[k.Alg] = k.KID
		}
	}
	if n := len(m.Keys.Current()); n != before+2 || len(revoked) != 2 {
		t.Errorf("%d keys (revoked %v) after one rotation and one revocation per algorithm, want %d (one per algorithm)", n, revoked, before+2)
	}

	stdout.Reset()
	if err := runDrill(t.Context(), []string{"--issuer", m.URL(), "--duration", "4s", "--force"}, &stdout, &stderr); err != nil {
		t.Fatalf("second drill: %v", err)
	}
	for _, want := range []string{"VERIFIER", "VALID REJECTED", "go-oidc RemoteKeySet", "JWKS max-age 1s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(logs.String(), admin.ClientSecret) {
		t.Error("server logs contain the admin secret")
	}
	if err := runDrill(t.Context(), []string{"--duration", "4s"}, &stdout, &stderr); err == nil {
		t.Error("drill without --issuer succeeded")
	}
}

// TestRun_Drill_Preconditions: a drill whose rotation the server would
// refuse (the pending key is younger than the JWKS max-age) fails before it
// creates anything or issues a token, not after --duration.
func TestRun_Drill_Preconditions(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, func(c *config.Config) { c.JWKS.MaxAge = "1h" })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	c.Issuer = m.URL()
	c.HTTP.Addr = m.Addr()
	m.Close()
	m, _ = startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	// A drill of an hour: were the check after the run, the test would time out.
	var stdout, stderr bytes.Buffer
	err = runDrill(t.Context(), []string{"--issuer", m.URL(), "--duration", "1h"}, &stdout, &stderr)
	if err == nil {
		t.Fatal("drill with a young pending key succeeded")
	}
	for _, want := range []string{"pending ES256 key", "pending EdDSA key", "max-age 1h0m0s", "--force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(stderr.String(), "issuing and verifying") {
		t.Errorf("the drill started before failing:\n%s", stderr.String())
	}
	list, err := m.Server.Clients().List(t.Context())
	if err != nil || len(list) != 1 {
		t.Errorf("clients after a refused drill = %v (%v): want only the admin client", list, err)
	}

}
