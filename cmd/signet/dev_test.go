package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/datadir"
	"github.com/signet-auth/signet/keys"
)

// devLine finds the log record that announces the demo client.
func devLine(t *testing.T, logs string) map[string]string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec["msg"].(string), "dev mode: demo client created") {
			continue
		}
		out := map[string]string{}
		for k, v := range rec {
			if s, ok := v.(string); ok {
				out[k] = s
			}
		}
		return out
	}
	return nil
}

func metricsBody(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestServe_Dev: --dev on an empty store logs a demo client whose curl line
// works as printed; the token endpoint feeds the Prometheus metrics.
func TestServe_Dev(t *testing.T) {
	c := testConfig(t, func(c *config.Config) { c.Dev = true })
	m, logs := startMain(t, c, nil)
	c.Issuer = m.URL() // the curl line targets the issuer; point it at the listener
	rec := devLine(t, logs.String())
	if rec == nil {
		t.Fatalf("no demo client in the logs:\n%s", logs)
	}
	if rec["client_id"] != authority.DemoClientID || len(rec["client_secret"]) != 43 {
		t.Fatalf("demo client record = %v", rec)
	}
	// --dev makes the admin client too, and may print its secret.
	if cs, _, err := datadir.ReadAdminCredentials(c.DataDir); err != nil || !strings.Contains(logs.String(), `"client_secret":"`+cs.ClientSecret+`"`) {
		t.Errorf("dev mode: admin credentials %+v, %v; want them in the file and the log:\n%s", cs, err, logs)
	}
	// The curl line must hold what a user needs: Basic credentials, grant, scope, endpoint.
	for _, part := range []string{"-u demo:" + rec["client_secret"], "grant_type=client_credentials", "scope=" + authority.DemoScope, "/oauth2/token"} {
		if !strings.Contains(rec["try"], part) {
			t.Errorf("curl line %q lacks %q", rec["try"], part)
		}
	}
	// Do what the curl line does.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {authority.DemoScope}}
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rec["client_id"], rec["client_secret"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"access_token"`)) {
		t.Fatalf("curl line's request: %d %s", resp.StatusCode, body)
	}
	bad := clientcredentials.Config{ClientID: "demo", ClientSecret: "wrong", TokenURL: m.URL() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := bad.Token(t.Context()); err == nil {
		t.Fatal("wrong secret accepted")
	}
	metrics := metricsBody(t, m.URL())
	for _, want := range []string{
		`signet_tokens_issued_total{alg="ES256",grant="client_credentials"} 1`,
		`signet_token_errors_total{error="invalid_client"} 1`,
		`signet_token_request_duration_seconds_count 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(metrics, "demo") {
		t.Error("metrics carry a client id label")
	}

	// A restart in dev mode on a store with clients creates nothing.
	m.Close()
	c.HTTP.Addr = "127.0.0.1:0"
	_, logs2 := startMain(t, c, nil)
	if devLine(t, logs2.String()) != nil || !strings.Contains(logs2.String(), "already has clients") {
		t.Errorf("second dev start created a demo client again:\n%s", logs2)
	}
}

// TestServe_FirstAdmin: the first start on an empty store makes the
// first admin client and writes its credentials to a 0600 file in the data
// directory, naming the file in the log but never the secret; `signet
// clients create --server` on this machine uses that file with the server
// running; a restart, or a store that has clients, makes nothing.
func TestServe_FirstAdmin(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, nil)
	m, logs := startMain(t, c, nil)
	path := filepath.Join(c.DataDir, datadir.AdminCredentialsFile)
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file %s: %v %v; want mode 0600", path, info, err)
	}
	cs, _, err := datadir.ReadAdminCredentials(c.DataDir)
	if err != nil || cs.ClientID != "admin" || len(cs.ClientSecret) != 43 {
		t.Fatalf("credentials = %+v, %v", cs, err)
	}
	if strings.Contains(logs.String(), cs.ClientSecret) || strings.Contains(logs.String(), "client_secret") {
		t.Errorf("the secret is in the log outside --dev:\n%s", logs)
	}
	if !strings.Contains(logs.String(), `"credentials_file":"`+path+`"`) {
		t.Errorf("the log does not say where the credentials are:\n%s", logs)
	}
	list, err := m.Server.Clients().List(t.Context())
	if err != nil || len(list) != 1 || list[0].ID != "admin" {
		t.Fatalf("clients after the first start = %v, %v; want the admin client alone", list, err)
	}

	// With the server running, the CLI creates a client with that file.
	t.Setenv("SIGNET_DATA_DIR", c.DataDir)
	out, _, err := clientsCmd(t, "create", "--server", m.URL(), "--id", "svc", "--audience", "api")
	if err != nil {
		t.Fatalf("clients create --server with the credentials file: %v", err)
	}
	decodeSecret(t, out)
	// localhost too, and --data-dir wins over the environment.
	t.Setenv("SIGNET_DATA_DIR", t.TempDir())
	_, port, _ := net.SplitHostPort(m.Addr())
	if _, _, err := clientsCmd(t, "list", "--server", "http://localhost:"+port, "--data-dir", c.DataDir); err != nil {
		t.Errorf("clients list --server localhost --data-dir: %v", err)
	}
	// No file in the data directory named: the error says where it looked.
	_, _, err = clientsCmd(t, "list", "--server", m.URL())
	if err == nil || !strings.Contains(err.Error(), "SIGNET_CLIENT_ID") || !strings.Contains(err.Error(), datadir.AdminCredentialsFile) {
		t.Errorf("without credentials: %v", err)
	}
	// A server elsewhere never gets the local file's secret.
	_, _, err = clientsCmd(t, "list", "--server", "http://signet.example.invalid:8080", "--data-dir", c.DataDir)
	if err == nil || !strings.Contains(err.Error(), "SIGNET_CLIENT_ID") || strings.Contains(err.Error(), datadir.AdminCredentialsFile) {
		t.Errorf("a remote server and the local file: %v", err)
	}
	// A file other users can read is refused, as the KEK is.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = clientsCmd(t, "list", "--server", m.URL(), "--data-dir", c.DataDir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("a world-readable credentials file: %v", err)
	}
	os.Chmod(path, 0o600)

	// A restart makes nothing and leaves the file alone.
	m.Close()
	before, _ := os.ReadFile(path)
	m2, logs2 := startMain(t, c, nil)
	after, _ := os.ReadFile(path)
	list, _ = m2.Server.Clients().List(t.Context())
	if !bytes.Equal(before, after) || len(list) != 2 || strings.Contains(logs2.String(), "first start") {
		t.Errorf("restart: %d clients, file changed %v:\n%s", len(list), !bytes.Equal(before, after), logs2)
	}

	// The database and KEK elsewhere: the data directory is made for the file.
	kek := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kek, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c4 := testConfig(t, func(c *config.Config) {
		c.Storage.Bolt.Path = filepath.Join(t.TempDir(), "signet.db")
		c.Keys.EncryptionKeyFile = kek
		c.DataDir = filepath.Join(t.TempDir(), "never-made")
	})
	startMain(t, c4, nil)
	if _, _, err := datadir.ReadAdminCredentials(c4.DataDir); err != nil {
		t.Errorf("with storage.bolt.path elsewhere: %v", err)
	}

	// `signet init` before the first start: the server makes no second admin.
	c3 := testConfig(t, nil)
	if _, _, err := initCmd(t, "--data-dir", c3.DataDir); err != nil {
		t.Fatal(err)
	}
	startMain(t, c3, nil)
	if _, err := os.Stat(filepath.Join(c3.DataDir, datadir.AdminCredentialsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a store made by signet init got a credentials file: %v", err)
	}
}

// TestRun_Keys_Online drives keys list/rotate/revoke through the admin API.
func TestRun_Keys_Online(t *testing.T) {
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

	keysCmd := func(args ...string) []keys.Info {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := runKeys(t.Context(), append(args, "--server", m.URL(), "--json"), &stdout, &stderr); err != nil {
			t.Fatalf("keys %v: %v", args, err)
		}
		var infos []keys.Info
		if err := json.Unmarshal(stdout.Bytes(), &infos); err != nil {
			t.Fatalf("keys %v output %q: %v", args, stdout.String(), err)
		}
		return infos
	}
	byState := func(infos []keys.Info) map[keys.State][]string {
		out := map[keys.State][]string{}
		for _, k := range infos {
			out[k.State] = append(out[k.State], k.KID)
		}
		return out
	}
	before := byState(keysCmd("list"))
	if len(before[keys.StateActive]) != 1 || len(before[keys.StatePending]) != 1 {
		t.Fatalf("fresh keys = %v", before)
	}
	var stdout, stderr bytes.Buffer
	err = runKeys(t.Context(), []string{"rotate", "--server", m.URL()}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--force activates it anyway") || strings.Contains(err.Error(), "force=true") || strings.Contains(err.Error(), "authority:") {
		t.Errorf("rotate without --force on a young pending key = %v, want a refusal naming --force", err)
	}
	after := byState(keysCmd("rotate", "--force"))
	if len(after[keys.StateActive]) != 1 || after[keys.StateActive][0] != before[keys.StatePending][0] {
		t.Fatalf("after rotate: %v; want the old pending %s active", after, before[keys.StatePending])
	}
	retired := before[keys.StateActive][0]
	revoked := byState(keysCmd("revoke", retired))
	if len(revoked[keys.StateRevoked]) != 1 || revoked[keys.StateRevoked][0] != retired {
		t.Errorf("after revoke: %v; want %s revoked", revoked, retired)
	}
	set, _, _ := fetchJWKS(t, m.URL())
	if _, ok := kids(set)[retired]; ok {
		t.Error("revoked key still published")
	}
	stdout.Reset()
	if err := runKeys(t.Context(), []string{"list", "--server", m.URL()}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "KID") || !strings.Contains(stdout.String(), "revoked") {
		t.Errorf("table output = %v\n%s", err, stdout.String())
	}
}
