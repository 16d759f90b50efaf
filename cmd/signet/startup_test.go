package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/storeopen"
)

// dirEntries lists what dir holds; nil when it does not exist.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestServe_FailedStartLeavesNothing starts serve on a fresh data directory
// in ways that must fail, and checks that nothing was written: no data
// directory, database, KEK file or keys.
func TestServe_FailedStartLeavesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	noEnv := func(string) string { return "" }
	cases := []struct {
		name   string
		edit   func(c *config.Config)
		getenv func(string) string
		want   string
	}{
		{"port in use", func(c *config.Config) { c.HTTP.Addr = busy.Addr().String() }, noEnv, "http.addr"},
		{"admin port in use", func(c *config.Config) { c.HTTP.AdminAddr = busy.Addr().String() }, noEnv, "http.admin_addr"},
		{"missing KEK file", func(c *config.Config) { c.Keys.EncryptionKeyFile = filepath.Join(t.TempDir(), "kek") }, noEnv, "does not exist"},
		{"bad SIGNET_KEK", nil, func(k string) string {
			if k == "SIGNET_KEK" {
				return "not-a-key"
			}
			return ""
		}, "SIGNET_KEK"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t, tc.edit)
			c.DataDir = filepath.Join(t.TempDir(), "data") // fresh, not made yet
			m := &Main{Config: c, LogOutput: io.Discard, Getenv: tc.getenv}
			err := m.Open(t.Context())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error naming %q", err, tc.want)
			}
			if _, err := os.Stat(c.DataDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("data dir left behind after a failed start: %v", dirEntries(t, c.DataDir))
			}
			if c.Keys.EncryptionKeyFile != "" {
				if _, err := os.Stat(c.Keys.EncryptionKeyFile); err == nil {
					t.Error("KEK file created by a failed start")
				}
			}
		})
	}

	// Bad configuration, through the command line: nothing in an existing,
	// empty data directory either.
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0", "--issuer", "localhost"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "issuer") {
		t.Fatalf("serve with a bad issuer: code %d, %s", code, stderr.String())
	}
	if left := dirEntries(t, dir); len(left) != 0 {
		t.Errorf("bad config left %v", left)
	}

	// A data directory that is a file: refused before anything is written.
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, func(c *config.Config) { c.DataDir = file })
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: noEnv}
	err = m.Open(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "not a directory") || !strings.Contains(err.Error(), file) {
		t.Fatalf("data dir that is a file: %v", err)
	}
}

// TestServe_FailedStartReleasesPort: a start that fails after binding frees
// the port, so the next start can have it.
func TestServe_FailedStartReleasesPort(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	c := testConfig(t, func(c *config.Config) {
		c.HTTP.Addr = addr
		c.Keys.EncryptionKeyFile = filepath.Join(t.TempDir(), "missing")
	})
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	if err := m.Open(t.Context()); err == nil {
		t.Fatal("started without its KEK file")
	}
	m.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still held after a failed start: %v", err)
	}
	ln.Close()
}

// TestServe_LockedDatabase: serve on a database another process holds says
// what serve can do, not --server.
func TestServe_LockedDatabase(t *testing.T) {
	c := testConfig(t, nil)
	st, err := storeopen.OpenBolt(c.BoltPath(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c.Storage.Bolt.LockTimeout = "50ms"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	err = m.Open(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "in use by another signet process") || strings.Contains(err.Error(), "--server") {
		t.Fatalf("serve on a held database: %v", err)
	}
	// The holder's database is still there.
	if _, err := os.Stat(c.BoltPath()); err != nil {
		t.Fatalf("the failed start removed the holder's database: %v", err)
	}
	// Offline commands do suggest --server.
	var stdout, stderr bytes.Buffer
	run(t.Context(), []string{"keys", "list", "--data-dir", c.DataDir}, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "--server") {
		t.Errorf("keys list on a held database: %s", stderr.String())
	}
}

// TestEnvTypo: an unknown SIGNET_* variable is a warning naming the
// closest one, at offline commands (stderr) and at serve (the log).
func TestEnvTypo(t *testing.T) {
	t.Setenv("SIGNET_ISSUR", "https://auth.example.com")
	t.Setenv("SIGNET_ZZZZZZZZZZZZZZZZZZZZ", "1")
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"keys", "list", "--data-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("keys list: code %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "SIGNET_ISSUR is ignored: did you mean SIGNET_ISSUER?") {
		t.Errorf("no typo warning:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "SIGNET_ZZZZZZZZZZZZZZZZZZZZ is ignored; signet reads SIGNET_ADDR, SIGNET_ADMIN_ADDR,") {
		t.Errorf("no warning for a variable close to none:\n%s", stderr.String())
	}

	var cf configFlags
	fs := newFlagSet("serve", io.Discard)
	cf.register(fs)
	if err := parseFlags(fs, []string{"--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	c, err := cf.load(fs)
	if err != nil {
		t.Fatal(err)
	}
	c.HTTP.Addr = "127.0.0.1:0"
	_, logs := startMain(t, c, nil)
	if !strings.Contains(logs.String(), "did you mean SIGNET_ISSUER?") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("serve did not log the typo:\n%s", logs.String())
	}
	// A typo in the config file stays an error.
	t.Setenv("SIGNET_CONFIG", writeConfig(t, "isuer: https://auth.example.com\n"))
	if code := run(t.Context(), []string{"keys", "list", "--data-dir", dir}, &stdout, &stderr); code == 0 {
		t.Error("a config file typo was accepted")
	}
}

func TestIssuerWarning(t *testing.T) {
	cases := []struct {
		issuer, addr string
		proxied      bool
		fromAddr     bool
		warn         bool
	}{
		{"http://localhost:8080", "127.0.0.1:8080", false, true, false},
		{"http://localhost:8080", "0.0.0.0:8080", false, true, true},
		{"http://localhost:8080", ":8080", true, true, true},
		{"http://10.0.0.5:8080", "10.0.0.5:8080", false, true, false},
		{"http://localhost:8080", "127.0.0.1:8080", false, false, false},
		{"http://localhost:8080", "0.0.0.0:8080", false, false, true},
		{"http://localhost:8080", ":8080", true, false, true},
		{"http://localhost:8080", "10.0.0.5:8080", false, false, true},
		// The case: --addr changed, the issuer configured for 8080.
		{"http://localhost:8080", "127.0.0.1:8181", false, false, true},
		{"https://auth.example.com", "0.0.0.0:8080", false, false, true},
		{"https://auth.example.com", "0.0.0.0:8080", true, false, false},
		{"http://auth.example.com:8080", "0.0.0.0:8080", false, false, false},
		{"http://127.0.0.1:9000", "127.0.0.1:8080", false, false, true},
		{"http://localhost:9000", "127.0.0.1:9000", false, false, false},
		{"http://10.0.0.6:9000", "10.0.0.5:9000", false, false, true},
	}
	for _, tc := range cases {
		w := issuerWarning(tc.issuer, tc.addr, tc.proxied, tc.fromAddr)
		if (w != "") != tc.warn {
			t.Errorf("issuer %s addr %s proxied %v from addr %v: warning %q, want one: %v", tc.issuer, tc.addr, tc.proxied, tc.fromAddr, w, tc.warn)
		}
		if w != "" && (!strings.Contains(w, "--issuer") || !strings.Contains(w, "SIGNET_ISSUER")) {
			t.Errorf("warning %q does not name --issuer and SIGNET_ISSUER", w)
		}
	}
	// At serve: logged at start.
	c := testConfig(t, func(c *config.Config) { c.HTTP.Addr = "0.0.0.0:0" })
	_, logs := startMain(t, c, nil)
	if !strings.Contains(logs.String(), "SIGNET_ISSUER") {
		t.Errorf("no issuer warning at serve on 0.0.0.0 with the default issuer:\n%s", logs.String())
	}
}

// TestServe_IssuerFollowsAddr: with no issuer configured, `signet serve
// --addr` on another port names that port in the issuer, the discovery
// document and the log; an issuer configured for another port is warned
// about at start.
func TestServe_IssuerFollowsAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	fs := newFlagSet("serve", io.Discard)
	var cf configFlags
	cf.register(fs)
	if err := parseFlags(fs, []string{"--addr", addr, "--data-dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	c, err := cf.load(fs)
	if err != nil {
		t.Fatal(err)
	}
	m, logs := startMain(t, c, nil)
	want := "http://localhost:" + port
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	resp, err := http.Get("http://" + m.Addr() + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.Issuer != want || meta.JWKSURI != want+"/.well-known/jwks.json" {
		t.Errorf("discovery on %s: issuer %q jwks_uri %q, want %s", addr, meta.Issuer, meta.JWKSURI, want)
	}
	if !strings.Contains(logs.String(), "it follows http.addr") || !strings.Contains(logs.String(), `"issuer":"`+want+`"`) {
		t.Errorf("the log does not say the issuer follows http.addr:\n%s", logs)
	}
	if strings.Contains(logs.String(), `"level":"WARN","msg":"the issuer`) {
		t.Errorf("a warning for an issuer nobody configured:\n%s", logs)
	}

	// Port 0: the issuer names the port bound.
	m0, _ := startMain(t, testConfig(t, nil), nil)
	if _, p0, _ := net.SplitHostPort(m0.Addr()); m0.Config.Issuer != "http://localhost:"+p0 {
		t.Errorf("on %s the issuer is %s", m0.Addr(), m0.Config.Issuer)
	}

	// Configured for 8080, listening elsewhere: warned.
	c2 := testConfig(t, func(c *config.Config) { c.Issuer = "http://localhost:8080"; c.HTTP.Addr = "127.0.0.1:" + port })
	m.Close()
	_, logs2 := startMain(t, c2, nil)
	if !strings.Contains(logs2.String(), "the issuer http://localhost:8080 is not http.addr 127.0.0.1:"+port) {
		t.Errorf("no warning for an issuer on another port:\n%s", logs2)
	}
}

// TestKEKErrors: the KEK error names the source in use, and offline
// commands refuse a KEK file other users can read, as serve does.
func TestKEKErrors(t *testing.T) {
	c := testConfig(t, nil)
	m, _ := startMain(t, c, nil)
	m.Close()
	other := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	m2 := &Main{Config: c, LogOutput: io.Discard, Getenv: func(k string) string {
		if k == "SIGNET_KEK" {
			return other
		}
		return ""
	}}
	err := m2.Open(t.Context())
	m2.Close()
	if err == nil || !strings.Contains(err.Error(), "key-encryption key in SIGNET_KEK") {
		t.Fatalf("wrong SIGNET_KEK: %v", err)
	}
	// Offline, the same through the real environment.
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	t.Setenv("SIGNET_KEK", other)
	var stdout, stderr bytes.Buffer
	run(t.Context(), []string{"keys", "rotate", "--force", "--data-dir", c.DataDir}, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "key-encryption key in SIGNET_KEK") || strings.Count(stderr.String(), "decrypt") != 1 {
		t.Errorf("offline rotate with a wrong SIGNET_KEK: %s", stderr.String())
	}
	t.Setenv("SIGNET_KEK", "")

	if err := os.Chmod(c.KEKPath(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"keys", "list"}, {"keys", "rotate"}, {"clients", "list"}, {"users", "list"}} {
		stderr.Reset()
		code := run(t.Context(), append(args, "--data-dir", c.DataDir), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), "chmod 600 "+c.KEKPath()) {
			t.Errorf("%v with a 0644 KEK file: code %d, %s", args, code, stderr.String())
		}
	}
}

// TestErrorMessages runs CLI error paths and checks their wording: no
// package-prefix stutter, --force spelled as the flag, users are users.
func TestErrorMessages(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"keys", "list", "--data-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatal(stderr.String())
	}
	check := func(args []string, stdin string, want ...string) {
		t.Helper()
		stderr.Reset()
		var err error
		if args[0] == "users" {
			_, errOut, uerr := usersCmd(t, stdin, args[1:]...)
			stderr.WriteString(errOut)
			err = uerr
			if err != nil {
				stderr.WriteString(err.Error())
			}
		} else if run(t.Context(), args, &stdout, &stderr) == 0 {
			err = nil
		}
		msg := stderr.String()
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: %q lacks %q", args, msg, w)
			}
		}
		for _, bad := range []string{"keys: rotate: keys", "rotate: keys:", "keys: keys:", "storage: not found", "authority:", "use force"} {
			if strings.Contains(msg, bad) {
				t.Errorf("%v: %q contains %q", args, msg, bad)
			}
		}
	}
	// keys list made the keys on an empty store? No: list writes nothing;
	// rotate makes them, and a second rotate finds the pending key too young.
	check([]string{"keys", "rotate", "--data-dir", dir}, "")
	check([]string{"keys", "rotate", "--data-dir", dir}, "", "signet keys: rotate: pending key published for less than the JWKS cache lifetime", "--force activates it anyway")
	check([]string{"keys", "revoke", "nokid", "--data-dir", dir}, "", `key "nokid" not found`)
	check([]string{"clients", "get", "nope", "--data-dir", dir}, "", `client "nope" not found`)
	check([]string{"clients", "delete", "nope", "--data-dir", dir}, "", `client "nope" not found`)
	check([]string{"users", "create", "--username", "bob", "--data-dir", dir}, "short\n", "invalid user: password: must be at least 8 characters")
	check([]string{"clients", "create", "--id", "x", "--data-dir", dir}, "", "invalid client: audiences")
	check([]string{"clients", "create", "--id", "x", "--audience", "api", "--data-dir", dir}, "")
	check([]string{"clients", "create", "--id", "x", "--audience", "api", "--data-dir", dir}, "", `client "x" already exists`)
	check([]string{"users", "create", "--username", "bob", "--data-dir", dir}, "a good password\n")
	check([]string{"users", "create", "--username", "BOB", "--data-dir", dir}, "a good password\n", `user "BOB" already exists`)
}

// TestServe_FailedStartRemovesItsDatabase: a start that fails after it
// made the database (here: the KEK file cannot be written, because the
// data directory of the default KEK path does not exist while the database
// lives elsewhere) removes that database and its keys.
func TestServe_FailedStartRemovesItsDatabase(t *testing.T) {
	root := t.TempDir()
	c := testConfig(t, func(c *config.Config) {
		c.DataDir = filepath.Join(root, "data")
		c.Storage.Bolt.Path = filepath.Join(root, "db", "signet.db")
	})
	m := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	err := m.Open(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("Open = %v, want a failure writing the KEK", err)
	}
	if _, err := os.Stat(c.BoltPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the database made by the failed start is still there: %v", err)
	}
	// An existing database is never removed by a failed start.
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	m2, _ := startMain(t, c, nil)
	m2.Close()
	c.Keys.EncryptionKeyFile = filepath.Join(root, "missing")
	m3 := &Main{Config: c, LogOutput: io.Discard, Getenv: func(string) string { return "" }}
	if err := m3.Open(t.Context()); err == nil {
		t.Fatal("started without its KEK file")
	}
	m3.Close()
	if _, err := os.Stat(c.BoltPath()); err != nil {
		t.Errorf("a failed start removed an existing database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "kek")); err != nil {
		t.Errorf("a failed start removed an existing KEK file: %v", err)
	}
}
