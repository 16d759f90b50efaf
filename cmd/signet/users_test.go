package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/users"
	"golang.org/x/oauth2"
)

// usersCmd runs `signet users ARGS` with stdin and returns stdout, stderr and its error.
func usersCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := usersCommand(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestRun_Users_Offline: the user lifecycle on a data directory, with the
// password from stdin and never from a flag.
func TestRun_Users_Offline(t *testing.T) {
	dir := t.TempDir()
	out, _, err := usersCmd(t, "s3cret password\n", "create", "--data-dir", dir, "--username", "alice", "--email", "alice@example.com", "--role", "ops", "--json")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var created []users.User
	if err := json.Unmarshal([]byte(out), &created); err != nil || len(created) != 1 || created[0].ID == "" || created[0].Username != "alice" {
		t.Fatalf("create output %q: %v", out, err)
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "argon2") {
		t.Errorf("create output shows the password or its hash: %s", out)
	}
	if _, _, err := usersCmd(t, "another password\n", "create", "--data-dir", dir, "--username", "ALICE"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("duplicate username = %v, want 'already exists'", err)
	}
	if _, _, err := usersCmd(t, "", "create", "--data-dir", dir, "--username", "bob"); err == nil || !strings.Contains(err.Error(), "no password on stdin") {
		t.Errorf("create without a password = %v", err)
	}
	if _, _, err := usersCmd(t, "short\n", "create", "--data-dir", dir, "--username", "bob"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("create with a short password = %v, want an error naming password", err)
	}
	var ue usageError
	if _, _, err := usersCmd(t, "", "create", "--data-dir", dir, "--username", "bob", "--password", "x"); err == nil || !errorAs(err, &ue) {
		t.Errorf("--password flag = %v, want a usage error (there is no such flag)", err)
	}
	out, _, err = usersCmd(t, "", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "USERNAME") || !strings.Contains(out, "alice") || !strings.Contains(out, "ops") {
		t.Fatalf("list = %v\n%s", err, out)
	}
	if _, _, err := usersCmd(t, "new password here\n", "set-password", "--data-dir", dir, "alice"); err != nil {
		t.Fatalf("set-password by username: %v", err)
	}
	if out, _, err := usersCmd(t, "", "logout", "--data-dir", dir, "alice"); err != nil || !strings.Contains(out, "logged out alice") {
		t.Errorf("logout offline = %v %q", err, out)
	}
	if _, _, err := usersCmd(t, "", "logout", "--data-dir", dir, "nobody"); err == nil {
		t.Error("logout of an unknown user succeeded")
	}
	if _, _, err := usersCmd(t, "", "delete", "--data-dir", dir, "nobody"); err == nil {
		t.Error("delete of an unknown user succeeded")
	}
	if out, _, err := usersCmd(t, "", "delete", "--data-dir", dir, created[0].ID); err != nil || !strings.Contains(out, "deleted user alice") {
		t.Fatalf("delete by id = %v %q", err, out)
	}
	out, _, _ = usersCmd(t, "", "list", "--json", "--data-dir", dir)
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("list after delete = %s", out)
	}
}

func errorAs(err error, target *usageError) bool {
	u, ok := err.(usageError)
	if ok {
		*target = u
	}
	return ok
}

// TestRun_Users_Online: a client created with --grant password --grant
// refresh_token, a user created through the admin API, a password login
// with golang.org/x/oauth2, and set-password ending the session.
func TestRun_Users_Online(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, nil)
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, logs := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)

	out, _, err = clientsCmd(t, "create", "--server", m.URL(), "--id", "app", "--grant", "password", "--grant", "refresh_token",
		"--scope", "read", "--audience", "API", "--refresh-reuse-grace", "5s", "--refresh-idle", "24h")
	if err != nil {
		t.Fatalf("create client: %v\n%s", err, logs)
	}
	app := decodeSecret(t, out)
	out, _, err = clientsCmd(t, "get", "--json", "--server", m.URL(), "app")
	if err != nil || !strings.Contains(out, `"password"`) || !strings.Contains(out, `"refresh_token"`) || !strings.Contains(out, `"refresh_reuse_grace": "5s"`) {
		t.Errorf("client = %v %s", err, out)
	}
	out, _, err = usersCmd(t, "first password\n", "create", "--server", m.URL(), "--username", "alice", "--json")
	if err != nil {
		t.Fatalf("create user online: %v", err)
	}
	var created []users.User
	_ = json.Unmarshal([]byte(out), &created)

	cfg := oauth2.Config{ClientID: app.ClientID, ClientSecret: app.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: m.URL() + "/oauth2/token"}}
	tok, err := cfg.PasswordCredentialsToken(t.Context(), "alice", "first password")
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("password login: %v %+v", err, tok)
	}
	if _, _, err := usersCmd(t, "second password\n", "set-password", "--server", m.URL(), "alice"); err != nil {
		t.Fatalf("set-password online: %v", err)
	}
	if _, err := cfg.PasswordCredentialsToken(t.Context(), "alice", "first password"); err == nil {
		t.Error("old password still works")
	}
	expired := &oauth2.Token{RefreshToken: tok.RefreshToken}
	if _, err := cfg.TokenSource(t.Context(), expired).Token(); err == nil {
		t.Error("refresh token survived set-password")
	}
	tok2, err := cfg.PasswordCredentialsToken(t.Context(), "alice", "second password")
	if err != nil {
		t.Fatalf("new password: %v", err)
	}
	out, _, err = usersCmd(t, "", "logout", "--server", m.URL(), "alice")
	if err != nil || !strings.Contains(out, "1 sessions revoked") {
		t.Errorf("logout online = %v %q, want one session revoked", err, out)
	}
	if _, err := cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Error("refresh token survived logout")
	}
	out, _, err = usersCmd(t, "", "list", "--server", m.URL())
	if err != nil || !strings.Contains(out, "alice") {
		t.Errorf("list online = %v %s", err, out)
	}
	if _, _, err := usersCmd(t, "", "delete", "--server", m.URL(), "alice"); err != nil {
		t.Fatalf("delete online: %v", err)
	}
	m.purgeJob(t.Context())
	for _, s := range []string{"first password", "second password", tok.RefreshToken} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("server logs contain a password or refresh token")
		}
	}
	if strings.Contains(logs.String(), "purge failed") {
		t.Errorf("purge failed: %s", logs)
	}
	if len(created) != 1 || created[0].Username != "alice" {
		t.Errorf("created = %+v", created)
	}
}

// TestRun_LoginClientAndConsents: a public SPA client and a third-party web
// client from the CLI, and a user's consents listed and withdrawn offline.
func TestRun_LoginClientAndConsents(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := runClients(t.Context(), []string{"create", "--data-dir", dir, "--id", "spa", "--public", "--grant", "authorization_code",
		"--grant", "refresh_token", "--scope", "openid profile", "--audience", "api", "--redirect-uri", "https://spa.example/cb",
		"--post-logout-redirect-uri", "https://spa.example/"}, &out, &errOut)
	if err != nil {
		t.Fatalf("create public client: %v %s", err, errOut.String())
	}
	if strings.Contains(out.String(), "client_secret") || !strings.Contains(out.String(), `"public": true`) {
		t.Errorf("public client output %q", out.String())
	}
	out.Reset()
	err = runClients(t.Context(), []string{"create", "--data-dir", dir, "--id", "web", "--grant", "authorization_code", "--scope", "openid",
		"--audience", "api", "--redirect-uri", "http://127.0.0.1:9000/cb", "--require-pkce=false", "--name", "Web App"}, &out, &errOut)
	if err != nil {
		t.Fatalf("create web client: %v", err)
	}
	out.Reset()
	if err := runClients(t.Context(), []string{"get", "--data-dir", dir, "--json", "web"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var got []clients.Client
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 1 || got[0].RequirePKCE == nil || *got[0].RequirePKCE ||
		got[0].ClientName != "Web App" || got[0].RedirectURIs[0] != "http://127.0.0.1:9000/cb" {
		t.Fatalf("get web = %s %v", out.String(), err)
	}
	if err := runClients(t.Context(), []string{"create", "--data-dir", dir, "--id", "bad", "--grant", "authorization_code",
		"--audience", "api", "--redirect-uri", "http://evil.example/cb"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "redirect_uris") {
		t.Errorf("http redirect for a web client = %v", err)
	}
	if _, _, err := usersCmd(t, "s3cret password\n", "create", "--data-dir", dir, "--username", "alice", "--name", "Alice", "--email", "a@example.com", "--email-verified"); err != nil {
		t.Fatal(err)
	}
	o, _, err := usersCmd(t, "", "consents", "--data-dir", dir, "alice")
	if err != nil || !strings.Contains(o, "CLIENT_ID") {
		t.Fatalf("consents = %v %q", err, o)
	}
	o, _, err = usersCmd(t, "", "consents", "--data-dir", dir, "--withdraw", "web", "alice")
	if err != nil || !strings.Contains(o, "had no consent for web") {
		t.Fatalf("withdraw = %v %q", err, o)
	}
}
