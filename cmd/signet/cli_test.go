package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/signet-auth/signet/config"
)

// helpFlags runs `signet ARGS -h` and returns the flags its help lists.
func helpFlags(t *testing.T, args ...string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), append(args, "-h"), &stdout, &stderr); code != 0 {
		t.Fatalf("%v -h: code %d: %s", args, code, stderr.String())
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(stderr.String(), -1) {
		flags = append(flags, m[1])
	}
	if !strings.HasPrefix(stderr.String(), "usage: signet "+strings.Join(args, " ")) {
		t.Errorf("%v -h does not start with its usage line:\n%s", args, stderr.String())
	}
	return flags
}

// TestHelp_OwnFlags: each subcommand's help lists its own flags and no
// other subcommand's.
func TestHelp_OwnFlags(t *testing.T) {
	cases := []struct {
		args      []string
		want, not []string
	}{
		{[]string{"keys", "list"}, []string{"json", "server", "data-dir"}, []string{"force", "addr", "issuer"}},
		{[]string{"keys", "rotate"}, []string{"force", "json", "server"}, []string{"addr"}},
		{[]string{"keys", "revoke"}, []string{"server"}, []string{"force"}},
		{[]string{"clients", "create"}, []string{"id", "audience", "scope", "server"}, []string{"keep-old", "force"}},
		{[]string{"clients", "list"}, []string{"json"}, []string{"id", "audience", "keep-old"}},
		{[]string{"clients", "get"}, []string{"json"}, []string{"id", "keep-old"}},
		{[]string{"clients", "delete"}, []string{"server"}, []string{"json", "id", "keep-old"}},
		{[]string{"clients", "rotate-secret"}, []string{"keep-old"}, []string{"id", "audience"}},
		{[]string{"users", "create"}, []string{"username", "role", "json"}, []string{"id"}},
		{[]string{"users", "list"}, []string{"json"}, []string{"username", "role"}},
		{[]string{"users", "logout"}, []string{"server"}, []string{"json", "username"}},
		{[]string{"init"}, []string{"id", "data-dir"}, []string{"addr", "issuer", "server"}},
		{[]string{"serve"}, []string{"addr", "issuer", "dev"}, []string{"server", "json"}},
	}
	for _, tc := range cases {
		got := helpFlags(t, tc.args...)
		for _, f := range tc.want {
			if !slices.Contains(got, f) {
				t.Errorf("%v -h lacks -%s: %v", tc.args, f, got)
			}
		}
		for _, f := range tc.not {
			if slices.Contains(got, f) {
				t.Errorf("%v -h lists -%s, another command's flag: %v", tc.args, f, got)
			}
		}
	}
	// Those flags are refused where they do not belong.
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"keys", "list", "--force", "--data-dir", t.TempDir()}, &stdout, &stderr); code != 2 {
		t.Errorf("keys list --force: code %d, want 2", code)
	}
}

// TestHelp_TopLevel lists every command and subcommand.
func TestHelp_TopLevel(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help: code %d", code)
	}
	help := stderr.String()
	for name := range commands() {
		if !strings.Contains(help, "  "+name) {
			t.Errorf("help lacks %s", name)
		}
	}
	for cmd, subs := range subcommands() {
		for _, s := range subs {
			if !strings.Contains(help, "  "+cmd+" "+s.name) {
				t.Errorf("help lacks %s %s", cmd, s.name)
			}
		}
	}
	for _, want := range []string{"clients get ID", "users logout USER", "keys revoke KID"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	// Every subcommand listed is one the command runs: its -h works.
	for cmd, subs := range subcommands() {
		for _, s := range subs {
			helpFlags(t, cmd, s.name)
		}
	}
}

// TestUnknownCommand: an unknown command or subcommand says so and
// suggests the closest one.
func TestUnknownCommand(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"keyz"}, `unknown command "keyz": did you mean "signet keys"?`},
		{[]string{"clint", "list"}, `unknown command "clint": did you mean "signet clients"?`},
		{[]string{"serv"}, `did you mean "signet serve"?`},
		{[]string{"keys", "rotat"}, `signet keys: unknown subcommand "rotat": did you mean "signet keys rotate"?`},
		{[]string{"clients", "gett", "x"}, `did you mean "signet clients get"?`},
		{[]string{"users", "logut", "bob"}, `did you mean "signet users logout"?`},
		{[]string{"users", "frobnicate"}, `unknown subcommand "frobnicate" (one of create, list, delete, set-password, logout, consents, factors)`},
		{[]string{"zzzzzzzz"}, `unknown command "zzzzzzzz"`},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), tc.args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: code %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr.String(), tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	run(t.Context(), []string{"zzzzzzzz"}, &stdout, &stderr)
	if strings.Contains(stderr.String(), "did you mean") {
		t.Errorf("suggested a command for a name close to none: %s", stderr.String())
	}
}

// TestAdminOnOtherListener: the CLI against the public listener of a
// server with http.admin_addr says to use the admin address, while a
// missing object on the admin listener stays a plain 404.
func TestAdminOnOtherListener(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, func(c *config.Config) { c.HTTP.AdminAddr = "127.0.0.1:0" })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	for _, args := range [][]string{{"keys", "list"}, {"clients", "list"}, {"users", "list"}} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), append(args, "--server", m.URL()), &stdout, &stderr); code == 0 {
			t.Fatalf("%v on the public listener succeeded", args)
		}
		if !strings.Contains(stderr.String(), "http.admin_addr") || !strings.Contains(stderr.String(), "--server") {
			t.Errorf("%v on the public listener: %s", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	run(t.Context(), []string{"clients", "get", "nope", "--server", m.AdminURL()}, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "404") || strings.Contains(stderr.String(), "http.admin_addr") {
		t.Errorf("missing client on the admin listener: %s", stderr.String())
	}
}

// TestDockerignore keeps data, git and build outputs out of the context.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	for _, want := range []string{"data/", ".git", "bin/", "signet", "*.test"} {
		if !slices.Contains(lines, want) && !slices.Contains(lines, "/"+want) && !slices.Contains(lines, "**/"+want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	// Nothing the build needs is excluded.
	for _, need := range []string{"go.mod", "go.sum", "scripts", "cmd", "Dockerfile"} {
		if slices.Contains(lines, need) || slices.Contains(lines, "/"+need) {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
}
