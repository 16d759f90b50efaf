package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConfig_ExampleIsDefaults: config.example.yaml documents every field
// with its default, so loading it must give exactly the defaults.
func TestConfig_ExampleIsDefaults(t *testing.T) {
	c := Default()
	if err := LoadFile(&c, "../config.example.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Parsed, d.Parsed = Parsed{}, Parsed{}
	if !equalConfig(c, d) {
		t.Errorf("config.example.yaml = %+v, want the defaults %+v", c, d)
	}
}

func equalConfig(a, b Config) bool {
	a.Parsed, b.Parsed = Parsed{}, Parsed{}
	return reflect.DeepEqual(a, b)
}

func TestShortestPeriod(t *testing.T) {
	c := Default()
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
		if c.Parsed.RotationPeriod != want {
			t.Errorf("period of %q = %s, want %s", spec, c.Parsed.RotationPeriod, want)
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
		{"second factor required_for unknown", func(c *Config) { c.Login.SecondFactor.RequiredFor = "everyone" }, []string{"login.second_factor.required_for", `"everyone"`, "none", "admins", "all"}},
		{"second factor grace negative", func(c *Config) { c.Login.SecondFactor.Grace = "-1h" }, []string{"login.second_factor.grace", "negative", "168h"}},
		{"second factor grace not a duration", func(c *Config) { c.Login.SecondFactor.Grace = "a week" }, []string{"login.second_factor.grace", `"a week"`, "168h"}},
		{"env rotation every -1h", func(c *Config) {
			if err := ApplyEnv(c, func(k string) string {
				return map[string]string{"SIGNET_KEYS_ROTATION_SCHEDULE": "@every -1h", "SIGNET_JWKS_MAX_AGE": "0s"}[k]
			}); err != nil {
				t.Fatal(err)
			}
		}, []string{"keys.rotation.schedule", "positive"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
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
	c := Default()
	c.Keys.Rotation.Schedule, c.Keys.Purge.Schedule, c.JWKS.MaxAge = "@every 1s", "CRON_TZ=UTC @every 1s", "0s"
	c.Keys.Purge.Leeway, c.Tokens.DefaultTTL, c.Tokens.MaxTTL = "1s", "1s", "1s"
	c.HTTP.ShutdownTimeout, c.Storage.Bolt.LockTimeout = "1s", "10ms"
	c.Login.SecondFactor = LoginSecondFactor{RequiredFor: "all", Grace: "0s"} // 0s: no grace
	if err := c.Validate(); err != nil {
		t.Fatalf("smallest allowed values: %v", err)
	}
	if c.Parsed.RotationPeriod != time.Second {
		t.Errorf("rotation period of @every 1s = %s, want 1s", c.Parsed.RotationPeriod)
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
			c := Default()
			if tc.tz != "" {
				c.Keys.Rotation.Timezone = tc.tz
			}
			if err := ApplyEnv(&c, func(k string) string {
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
			if got := c.Parsed.Rotation.Next(from); !got.Equal(tc.want) {
				t.Errorf("rotation after %s = %s, want %s", from, got.UTC(), tc.want)
			}
			if got := c.Parsed.Purge.Next(from); !got.Equal(tc.want) {
				t.Errorf("purge after %s = %s, want %s", from, got.UTC(), tc.want)
			}
		})
	}
	c := Default()
	c.Keys.Rotation.Timezone = "Mars/Olympus_Mons"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "keys.rotation.timezone") || !strings.Contains(err.Error(), "Europe/Berlin") {
		t.Errorf("Validate() with an unknown zone = %v, want an error naming keys.rotation.timezone", err)
	}
}

func TestConfig_Etcd(t *testing.T) {
	c := Default()
	env := map[string]string{
		"SIGNET_STORAGE_BACKEND":              "etcd",
		"SIGNET_STORAGE_ETCD_ENDPOINTS":       "http://10.0.0.1:2379, https://etcd2:2379",
		"SIGNET_STORAGE_ETCD_PREFIX":          "prod/",
		"SIGNET_STORAGE_ETCD_DIAL_TIMEOUT":    "2s",
		"SIGNET_STORAGE_ETCD_REQUEST_TIMEOUT": "3s",
		"SIGNET_STORAGE_ETCD_MAX_STALENESS":   "4s",
		"SIGNET_STORAGE_ETCD_LEADER_TTL":      "6s",
		"SIGNET_STORAGE_ETCD_TLS_CA_FILE":     "/ca.pem",
		"SIGNET_STORAGE_ETCD_TLS_CERT_FILE":   "/c.pem",
		"SIGNET_STORAGE_ETCD_TLS_KEY_FILE":    "/k.pem",
		"SIGNET_STORAGE_ETCD_USERNAME":        "signet",
		"SIGNET_STORAGE_ETCD_PASSWORD_FILE":   "/pw",
	}
	if err := ApplyEnv(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e := c.Storage.Etcd
	want := Etcd{
		Endpoints: []string{"http://10.0.0.1:2379", "https://etcd2:2379"}, Prefix: "prod/",
		DialTimeout: "2s", RequestTimeout: "3s", MaxStaleness: "4s", LeaderTTL: "6s",
		TLS:      EtcdTLS{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem"},
		Username: "signet", PasswordFile: "/pw",
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("storage.etcd from env = %+v, want %+v", e, want)
	}

	for name, tc := range map[string]struct {
		edit  func(e *Etcd)
		field string
	}{
		"no endpoints":   {func(e *Etcd) { e.Endpoints = nil }, "storage.etcd.endpoints"},
		"bad endpoint":   {func(e *Etcd) { e.Endpoints = []string{"etcd:2379"} }, "storage.etcd.endpoints"},
		"empty prefix":   {func(e *Etcd) { e.Prefix = "" }, "storage.etcd.prefix"},
		"bad duration":   {func(e *Etcd) { e.RequestTimeout = "soon" }, "storage.etcd.request_timeout"},
		"short stale":    {func(e *Etcd) { e.MaxStaleness = "10ms" }, "storage.etcd.max_staleness"},
		"short lease":    {func(e *Etcd) { e.LeaderTTL = "500ms" }, "storage.etcd.leader_ttl"},
		"cert, no key":   {func(e *Etcd) { e.TLS.KeyFile = "" }, "storage.etcd.tls"},
		"user, no pass":  {func(e *Etcd) { e.PasswordFile = "" }, "storage.etcd.username"},
		"unknown engine": {nil, "storage.backend"},
	} {
		c2 := c
		c2.Storage.Etcd.Endpoints = append([]string(nil), e.Endpoints...)
		if tc.edit != nil {
			tc.edit(&c2.Storage.Etcd)
		} else {
			c2.Storage.Backend = "consul"
		}
		if err := c2.Validate(); err == nil || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: Validate() = %v, want an error naming %s", name, err, tc.field)
		}
	}
}

// TestLoad_OneRound: every problem of the file, the environment and the
// values comes in one error, unknown fields with the field meant.
func TestLoad_OneRound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.yaml")
	yaml := "isuer: https://auth.example.com\nhttp:\n  adress: 127.0.0.1:8181\n  trusted_proxies: 10.0.0.0/8\n" +
		"keys:\n  rsa_bits: many\n  rotation:\n    schedul: '@every 1h'\ntokens:\n  max_ttl: forever\n  frobnicate: 1\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SIGNET_STORAGE_ETCD_PREFIX": "x/", "SIGNET_LOG_LEVEL": "loud"}
	_, err := Load(Sources{File: path, Getenv: func(k string) string { return env[k] }})
	if err == nil {
		t.Fatal("Load accepted a file with seven problems")
	}
	for _, want := range []string{
		`line 1: unknown field "isuer": did you mean "issuer"?`,
		`line 3: unknown field "http.adress": did you mean "addr"?`,
		"line 4: http.trusted_proxies: `10.0.0.0/8` is not a list, such as [a, b]",
		"line 6: keys.rsa_bits: `many` is not a number",
		`line 8: unknown field "keys.rotation.schedul": did you mean "schedule"?`,
		`tokens.max_ttl: "forever": expected a duration`,
		`line 11: unknown field "tokens.frobnicate": tokens has default_ttl, max_ttl, refresh`,
		`log.level: "loud"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if regexp.MustCompile(`main\.|config\.[A-Z]|!!|unmarshal`).MatchString(err.Error()) {
		t.Errorf("error speaks Go or YAML types:\n%v", err)
	}

	// A file that is not YAML is the one error: nothing else can be read.
	if err := os.WriteFile(path, []byte("issuer: [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(Sources{File: path, Getenv: func(k string) string { return env[k] }})
	if err == nil || !strings.Contains(err.Error(), "line") || strings.Contains(err.Error(), "log.level") {
		t.Errorf("malformed YAML: %v", err)
	}
}

func TestSuggestField(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want string
	}{
		{"adress", "addr"}, {"address", "addr"}, {"addr", "addr"}, {"admn_addr", "admin_addr"},
		{"admin_address", "admin_addr"}, {"trusted_proxy", "trusted_proxies"}, {"metrics", ""}, {"zzzzzz", ""},
	} {
		if got := suggestField(tc.s, []string{"addr", "admin_addr", "metrics_addr", "trusted_proxies", "shutdown_timeout"}); got != tc.want {
			t.Errorf("suggestField(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
