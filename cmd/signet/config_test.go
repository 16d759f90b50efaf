package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
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
		{"unknown field", "keys:\n  algoritms: [RS256]\n", nil, []string{`unknown field "algoritms"`, "config.example.yaml"}},
		{"wrong type", "keys:\n  rsa_bits: many\n", nil, []string{"line 2", "many"}},
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

// TestConfig_ExampleIsDefaults: config.example.yaml documents every field
// with its default, so loading it must give exactly the defaults.
func TestConfig_ExampleIsDefaults(t *testing.T) {
	c := defaultConfig()
	if err := loadConfigFile(&c, "../../config.example.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := defaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	c.parsed, d.parsed = parsedConfig{}, parsedConfig{}
	if !equalConfig(c, d) {
		t.Errorf("config.example.yaml = %+v, want the defaults %+v", c, d)
	}
}

func equalConfig(a, b Config) bool {
	a.parsed, b.parsed = parsedConfig{}, parsedConfig{}
	return reflect.DeepEqual(a, b)
}

func TestShortestPeriod(t *testing.T) {
	c := defaultConfig()
	for spec, want := range map[string]time.Duration{
		"@every 24h":  24 * time.Hour,
		"0 3 * * 1":   7 * 24 * time.Hour,
		"0 3,4 * * *": time.Hour,
		"@hourly":     time.Hour,
	} {
		c.Keys.Rotation.Schedule = spec
		c.JWKS.MaxAge = "1s"
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.parsed.rotationPeriod != want {
			t.Errorf("period of %q = %s, want %s", spec, c.parsed.rotationPeriod, want)
		}
	}
}

// TestConfig_Validate_ZeroAndNegative: every duration and schedule field
// refuses zero and negative values (robfig/cron would run "@every -1h" every
// second; keys would read a zero leeway as its 5m default), with an error
// naming the field and a value to use instead. Values from the environment
// take the same path.
func TestConfig_Validate_ZeroAndNegative(t *testing.T) {
	tests := []struct {
		name  string
		set   func(c *Config)
		wants []string
	}{
		{"rotation every -1h", func(c *Config) { c.Keys.Rotation.Schedule = "@every -1h"; c.JWKS.MaxAge = "0s" }, []string{"keys.rotation.schedule", `"@every -1h"`, "positive", "@every 24h"}},
		{"rotation every 0s", func(c *Config) { c.Keys.Rotation.Schedule = "@every 0s"; c.JWKS.MaxAge = "0s" }, []string{"keys.rotation.schedule", "positive"}},
		{"rotation every 500ms", func(c *Config) { c.Keys.Rotation.Schedule = "@every 500ms"; c.JWKS.MaxAge = "0s" }, []string{"keys.rotation.schedule", "at least 1s"}},
		{"rotation with time zone", func(c *Config) { c.Keys.Rotation.Schedule = "CRON_TZ=UTC @every -24h"; c.JWKS.MaxAge = "0s" }, []string{"keys.rotation.schedule", "positive"}},
		{"purge every -10m", func(c *Config) { c.Keys.Purge.Schedule = "@every -10m" }, []string{"keys.purge.schedule", "positive", "@every"}},
		{"purge leeway negative", func(c *Config) { c.Keys.Purge.Leeway = "-5m" }, []string{"keys.purge.leeway", "negative", "5m"}},
		{"purge leeway zero", func(c *Config) { c.Keys.Purge.Leeway = "0s" }, []string{"keys.purge.leeway", "at least 1s"}},
		{"jwks max_age negative", func(c *Config) { c.JWKS.MaxAge = "-300s" }, []string{"jwks.max_age", "negative", "300s"}},
		{"default ttl negative", func(c *Config) { c.Tokens.DefaultTTL = "-15m" }, []string{"tokens.default_ttl", "negative", "15m"}},
		{"default ttl zero", func(c *Config) { c.Tokens.DefaultTTL = "0s" }, []string{"tokens.default_ttl", "at least 1s"}},
		{"max ttl negative", func(c *Config) { c.Tokens.MaxTTL = "-1h" }, []string{"tokens.max_ttl", "negative", "1h"}},
		{"max ttl zero", func(c *Config) { c.Tokens.MaxTTL = "0" }, []string{"tokens.max_ttl", "at least 1s"}},
		{"refresh idle negative", func(c *Config) { c.Tokens.Refresh.IdleTTL = "-336h" }, []string{"tokens.refresh.idle_ttl", "negative", "336h"}},
		{"refresh absolute zero", func(c *Config) { c.Tokens.Refresh.AbsoluteTTL = "0s" }, []string{"tokens.refresh.absolute_ttl", "at least 1m"}},
		{"login window negative", func(c *Config) { c.Login.RateLimit.Window = "-1m" }, []string{"login.rate_limit.window", "negative", "1m"}},
		{"login window zero", func(c *Config) { c.Login.RateLimit.Window = "0s" }, []string{"login.rate_limit.window", "at least 1s"}},
		{"shutdown timeout negative", func(c *Config) { c.HTTP.ShutdownTimeout = "-15s" }, []string{"http.shutdown_timeout", "negative", "15s"}},
		{"shutdown timeout zero", func(c *Config) { c.HTTP.ShutdownTimeout = "0s" }, []string{"http.shutdown_timeout", "at least 1s"}},
		{"lock timeout negative", func(c *Config) { c.Storage.Bolt.LockTimeout = "-1s" }, []string{"storage.bolt.lock_timeout", "negative", "1s"}},
		{"lock timeout zero", func(c *Config) { c.Storage.Bolt.LockTimeout = "0s" }, []string{"storage.bolt.lock_timeout", "at least 10ms"}},
		{"env rotation every -1h", func(c *Config) {
			if err := applyEnv(c, func(k string) string {
				return map[string]string{"SIGNET_KEYS_ROTATION_SCHEDULE": "@every -1h", "SIGNET_JWKS_MAX_AGE": "0s"}[k]
			}); err != nil {
				t.Fatal(err)
			}
		}, []string{"keys.rotation.schedule", "positive"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.set(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, does not contain %q", err, want)
				}
			}
		})
	}

	// The smallest allowed values still pass, and jwks.max_age 0 (no caching)
	// keeps its meaning.
	c := defaultConfig()
	c.Keys.Rotation.Schedule, c.Keys.Purge.Schedule, c.JWKS.MaxAge = "@every 1s", "CRON_TZ=UTC @every 1s", "0s"
	c.Keys.Purge.Leeway, c.Tokens.DefaultTTL, c.Tokens.MaxTTL = "1s", "1s", "1s"
	c.HTTP.ShutdownTimeout, c.Storage.Bolt.LockTimeout = "1s", "10ms"
	if err := c.Validate(); err != nil {
		t.Fatalf("smallest allowed values: %v", err)
	}
	if c.parsed.rotationPeriod != time.Second {
		t.Errorf("rotation period of @every 1s = %s, want 1s", c.parsed.rotationPeriod)
	}
}

// TestConfig_RotationTimezone: cron specs are read in keys.rotation.timezone
// (default UTC, not the machine's zone), a spec's own CRON_TZ= wins, the
// purge schedule follows the same zone, and SIGNET_KEYS_ROTATION_TIMEZONE
// sets it; an unknown zone is an error naming the field.
func TestConfig_RotationTimezone(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // Berlin is UTC+1 in January
	tests := []struct {
		name, tz, env, spec string
		want                time.Time
	}{
		{"default UTC", "", "", "0 3 * * *", time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)},
		{"Berlin", "Europe/Berlin", "", "0 3 * * *", time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)},
		{"env", "", "Europe/Berlin", "0 3 * * *", time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)},
		{"spec's own CRON_TZ wins", "Europe/Berlin", "", "CRON_TZ=America/New_York 0 3 * * *", time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)},
		{"@every ignores the zone", "Asia/Tokyo", "", "@every 24h", from.Add(24 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			if tc.tz != "" {
				c.Keys.Rotation.Timezone = tc.tz
			}
			if err := applyEnv(&c, func(k string) string {
				if k == "SIGNET_KEYS_ROTATION_TIMEZONE" {
					return tc.env
				}
				return ""
			}); err != nil {
				t.Fatal(err)
			}
			c.Keys.Rotation.Schedule, c.Keys.Purge.Schedule = tc.spec, tc.spec
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := c.parsed.rotation.Next(from); !got.Equal(tc.want) {
				t.Errorf("rotation after %s = %s, want %s", from, got.UTC(), tc.want)
			}
			if got := c.parsed.purge.Next(from); !got.Equal(tc.want) {
				t.Errorf("purge after %s = %s, want %s", from, got.UTC(), tc.want)
			}
		})
	}
	c := defaultConfig()
	c.Keys.Rotation.Timezone = "Mars/Olympus_Mons"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "keys.rotation.timezone") || !strings.Contains(err.Error(), "Europe/Berlin") {
		t.Errorf("Validate() with an unknown zone = %v, want an error naming keys.rotation.timezone", err)
	}
}
