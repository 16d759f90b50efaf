package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun_Serve_BadInput: each bad configuration exits non-zero with an
// error that names the cause, before anything listens; none panics.
func TestRun_Serve_BadInput(t *testing.T) {
	dir := t.TempDir()
	aFile := filepath.Join(dir, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	held := testConfig(t, nil)
	startMain(t, held, nil)

	tests := []struct {
		name  string
		yaml  string
		args  []string
		wants []string
	}{
		{"malformed yaml", "issuer: [unclosed\n", nil, []string{"config", "line"}},
		{"unknown field", "keys:\n  algoritms: [RS256]\n", nil, []string{`line 2: unknown field "keys.algoritms": did you mean "algorithms"?`, "config.example.yaml"}},
		{"wrong type", "keys:\n  rsa_bits: many\n", nil, []string{"line 2: keys.rsa_bits: `many` is not a number"}},
		// One round: unknown fields, wrong types and invalid values together.
		{"unknown field and invalid value", "http:\n  adress: 127.0.0.1:8181\ntokens:\n  max_ttl: forever\n", nil,
			[]string{`line 2: unknown field "http.adress": did you mean "addr"?`, "tokens.max_ttl", `"forever"`}},
		{"wrong type and invalid value", "keys:\n  rsa_bits: many\nlog:\n  level: loud\n", nil, []string{"keys.rsa_bits", "many", "log.level", "loud"}},
		{"bad cron spec", "keys:\n  rotation:\n    schedule: every day\n", nil, []string{"keys.rotation.schedule", `"every day"`, "@every 24h"}},
		{"bad algorithm", "keys:\n  algorithms: [RS256, HS256]\n", nil, []string{"keys.algorithms", `"HS256"`}},
		{"rsa below 2048", "keys:\n  rsa_bits: 1024\n", nil, []string{"keys.rsa_bits", "1024", "2048"}},
		{"max-age above rotation period", "keys:\n  rotation:\n    schedule: '@every 1m'\njwks:\n  max_age: 5m\n", nil, []string{"jwks.max_age", "keys.rotation.schedule", "1m0s"}},
		{"bad duration", "tokens:\n  max_ttl: forever\n", nil, []string{"tokens.max_ttl", `"forever"`}},
		{"default ttl above max", "tokens:\n  default_ttl: 2h\n  max_ttl: 1h\n", nil, []string{"tokens.default_ttl"}},
		{"refresh idle above absolute", "tokens:\n  refresh:\n    idle_ttl: 100h\n    absolute_ttl: 10h\n", nil, []string{"tokens.refresh.idle_ttl", "absolute_ttl"}},
		{"bad refresh duration", "tokens:\n  refresh:\n    absolute_ttl: 90d\n", nil, []string{"tokens.refresh.absolute_ttl", `"90d"`}},
		{"login limit zero", "login:\n  rate_limit:\n    per_user_ip: 0\n", nil, []string{"login.rate_limit.per_user_ip"}},
		{"login window", "login:\n  rate_limit:\n    window: soon\n", nil, []string{"login.rate_limit.window"}},
		{"issuer with slash", "issuer: https://auth.example.com/\n", nil, []string{"issuer", "trailing slash"}},
		{"bad admin addr", "http:\n  admin_addr: localhost\n", nil, []string{"http.admin_addr", "HOST:PORT"}},
		{"bad trusted proxy", "http:\n  trusted_proxies: [10.0.0.0]\n", nil, []string{"http.trusted_proxies", "CIDR"}},
		{"bad addr", "", []string{"--addr", "nonsense"}, []string{"http.addr", "HOST:PORT"}},
		{"audit retention zero", "audit:\n  retention: 0s\n", nil, []string{"audit.retention", "positive"}},
		{"audit retention negative", "audit:\n  retention: -1h\n", nil, []string{"audit.retention", "positive"}},
		{"bad access log", "log:\n  access: some\n", nil, []string{"log.access", `"some"`, "errors"}},
		{"several at once", "keys:\n  rsa_bits: 1000\nlog:\n  level: loud\n", nil, []string{"keys.rsa_bits", "log.level"}},
		{"data dir is a file", "", []string{"--data-dir", aFile}, []string{"data directory", "not a directory"}},
		{"database held by another process", "", []string{"--data-dir", held.DataDir}, []string{"in use by another signet process"}},
		{"missing config file", "", []string{"--config", filepath.Join(dir, "absent.yaml")}, []string{"absent.yaml", "no such file"}},
		{"unknown flag", "", []string{"--frobnicate"}, []string{"frobnicate"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "d", string(rune('a'+i)))}
			if tc.yaml != "" {
				path := filepath.Join(dir, tc.name+".yaml")
				if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			args = append(args, tc.args...)
			var out, errOut bytes.Buffer
			code := run(t.Context(), args, &out, &errOut)
			if code == 0 {
				t.Fatalf("exit 0, want an error; stderr: %s", errOut.String())
			}
			for _, want := range tc.wants {
				if !strings.Contains(errOut.String(), want) {
					t.Errorf("stderr %q does not contain %q", errOut.String(), want)
				}
			}
			if strings.Contains(errOut.String(), "panic") || strings.Contains(errOut.String(), "goroutine ") {
				t.Errorf("stderr shows a panic: %s", errOut.String())
			}
		})
	}
}

func TestConfig_Precedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("issuer: https://file.example\nhttp:\n  addr: 127.0.0.1:1111\ndata_dir: /from/file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIGNET_ADDR", "127.0.0.1:2222")
	t.Setenv("SIGNET_DATA_DIR", "/from/env")
	fs := newFlagSet("serve", &bytes.Buffer{})
	var cf configFlags
	cf.register(fs)
	if err := parseFlags(fs, []string{"--config", path, "--data-dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	c, err := cf.load(fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://file.example" || c.HTTP.Addr != "127.0.0.1:2222" || c.DataDir != "/from/flag" {
		t.Errorf("issuer %q addr %q data_dir %q: want file, env, flag", c.Issuer, c.HTTP.Addr, c.DataDir)
	}
}
