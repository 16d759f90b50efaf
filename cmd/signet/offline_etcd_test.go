package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestOffline_Etcd_EveryCommand (issue 17): every command that opens a
// store offline honours storage.backend: with an etcd configuration each
// reads and writes etcd, and none creates a bolt file in the data
// directory. `signet audit` used to open bolt whatever the backend: it
// printed no events, exited 0 and left an empty signet.db behind. The
// table must name every command (commands()) that is not online-only, so
// a new command cannot skip the test.
func TestOffline_Etcd_EveryCommand(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kek := newKEK(t)
	t.Setenv("SIGNET_KEK", base64.StdEncoding.EncodeToString(kek))
	dataDir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nstorage:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: offline/\nkeys:\n  algorithms: [ES256]\n",
		dataDir, strings.Join(cl.Endpoints(), ", ")))
	boltDir := t.TempDir()
	boltCfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nkeys:\n  algorithms: [ES256]\n", boltDir))
	bak := filepath.Join(t.TempDir(), "signet.backup")

	// What etcd holds, read directly.
	etcdKIDs := func() []string {
		st, err := etcd.Open(t.Context(), etcd.Options{Endpoints: cl.Endpoints(), Prefix: "offline/"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		infos, err := keys.List(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, i := range infos {
			kids = append(kids, i.KID)
		}
		return kids
	}
	type step struct {
		cmd   string
		args  []string
		stdin string
		check func(t *testing.T, out, errOut string, code int)
	}
	ok := func(wants ...string) func(t *testing.T, out, errOut string, code int) {
		return func(t *testing.T, out, errOut string, code int) {
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range wants {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		}
	}
	steps := []step{
		{cmd: "init", args: []string{"init", "--config", cfg}, check: ok("client_secret")},
		{cmd: "clients", args: []string{"clients", "create", "--config", cfg, "--id", "app", "--audience", "api"}, check: ok("client_secret")},
		{cmd: "clients", args: []string{"clients", "list", "--config", cfg}, check: ok("app")},
		{cmd: "users", args: []string{"users", "create", "--config", cfg, "--username", "alice"}, stdin: "a long enough password\n", check: ok()},
		{cmd: "users", args: []string{"users", "list", "--config", cfg}, check: ok("alice")},
		{cmd: "keys", args: []string{"keys", "rotate", "--config", cfg, "--force"}, check: func(t *testing.T, out, errOut string, code int) {
			ok()(t, out, errOut, code)
			if n := len(etcdKIDs()); n != 3 {
				t.Errorf("etcd holds %d keys after an offline rotation of an empty store, want 3 (retired, active, pending)", n)
			}
		}},
		{cmd: "keys", args: []string{"keys", "list", "--config", cfg}, check: func(t *testing.T, out, errOut string, code int) {
			ok()(t, out, errOut, code)
			kids := etcdKIDs()
			if len(kids) == 0 {
				t.Fatal("no keys in etcd")
			}
			for _, kid := range kids {
				if !strings.Contains(out, kid) {
					t.Errorf("keys list lacks etcd's key %s:\n%s", kid, out)
				}
			}
		}},
		{cmd: "jwks", args: []string{"jwks", "signers", "--config", cfg}, check: ok(`"keys"`)},
		{cmd: "audit", args: []string{"audit", "--config", cfg}, check: ok("clients.create", "users.create", "keys.rotate")},
		{cmd: "backup", args: []string{"backup", "--config", cfg, "--out", bak}, check: func(t *testing.T, out, errOut string, code int) {
			ok()(t, out, errOut, code)
			h, err := backup.ReadHeader(bak)
			if err != nil {
				t.Fatal(err)
			}
			if h.KEKFingerprint != backup.KEKFingerprint(kek) {
				t.Errorf("backup KEK fingerprint %q, want etcd's keys' %q (an empty store names none)", h.KEKFingerprint, backup.KEKFingerprint(kek))
			}
		}},
		{cmd: "restore", args: []string{"restore", "--config", cfg, "--from", bak}, check: func(t *testing.T, out, errOut string, code int) {
			if code == 0 || !strings.Contains(errOut, "signet migrate") {
				t.Errorf("restore with an etcd configuration = exit %d %s; want a refusal that names signet migrate", code, errOut)
			}
		}},
		{cmd: "migrate", args: []string{"migrate", "--from", cfg, "--to", boltCfg}, check: func(t *testing.T, out, errOut string, code int) {
			ok("migrated")(t, out, errOut, code)
			o, e, c := runCmd(t, "clients", "list", "--config", boltCfg)
			if c != 0 || !strings.Contains(o, "app") {
				t.Errorf("the bolt copy of etcd lacks the client: exit %d %s %s", c, o, e)
			}
		}},
	}
	online := []string{"serve", "drill", "version", "health", "verify"} // verify reads an issuer's JWKS over HTTP
	covered := map[string]bool{}
	for _, s := range steps {
		covered[s.cmd] = true
		t.Run(strings.Join(s.args[:min(2, len(s.args))], "_"), func(t *testing.T) {
			var out, errOut strings.Builder
			code := runWithStdin(t, s.stdin, s.args, &out, &errOut)
			s.check(t, out.String(), errOut.String(), code)
			if _, err := os.Stat(filepath.Join(dataDir, "signet.db")); err == nil {
				t.Fatalf("%s created a bolt file in the data directory of an etcd configuration", s.cmd)
			}
		})
	}
	for name := range commands() {
		if !covered[name] && !slices.Contains(online, name) {
			t.Errorf("command %q is not in the offline etcd test (add a step, or list it as online-only)", name)
		}
	}
}

// runWithStdin runs a command line as main does; `users` reads stdin from
// the string given.
func runWithStdin(t *testing.T, stdin string, args []string, stdout, stderr io.Writer) int {
	t.Helper()
	if args[0] != "users" || stdin == "" {
		return run(t.Context(), args, stdout, stderr)
	}
	if err := usersCommand(t.Context(), args[1:], strings.NewReader(stdin), stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
