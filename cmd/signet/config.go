package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/keys"
)

// Config mirrors config.example.yaml. Durations and schedules stay strings
// here and are parsed in Validate, where the field's name is known, so every
// error can name it.
type Config struct {
	Issuer  string        `yaml:"issuer"`
	DataDir string        `yaml:"data_dir"`
	HTTP    httpConfig    `yaml:"http"`
	Storage storageConfig `yaml:"storage"`
	Keys    keysConfig    `yaml:"keys"`
	JWKS    jwksConfig    `yaml:"jwks"`
	Tokens  tokensConfig  `yaml:"tokens"`
	Login   loginConfig   `yaml:"login"`
	UI      uiConfig      `yaml:"ui"`
	Log     logConfig     `yaml:"log"`
	Audit   auditConfig   `yaml:"audit"`
	Dev     bool          `yaml:"dev"`

	// Parsed by Validate.
	parsed parsedConfig `yaml:"-"`
}

type httpConfig struct {
	Addr            string   `yaml:"addr"`
	AdminAddr       string   `yaml:"admin_addr"`
	MetricsAddr     string   `yaml:"metrics_addr"`
	TrustedProxies  []string `yaml:"trusted_proxies"`
	ShutdownTimeout string   `yaml:"shutdown_timeout"`
}

type storageConfig struct {
	Backend string     `yaml:"backend"`
	Bolt    boltConfig `yaml:"bolt"`
	Etcd    etcdConfig `yaml:"etcd"` // storeopen.go
}

type boltConfig struct {
	Path        string `yaml:"path"`
	LockTimeout string `yaml:"lock_timeout"`
}

type keysConfig struct {
	Algorithms        []string       `yaml:"algorithms"`
	RSABits           int            `yaml:"rsa_bits"`
	EncryptionKeyFile string         `yaml:"encryption_key_file"`
	Rotation          scheduleConfig `yaml:"rotation"`
	Purge             purgeConfig    `yaml:"purge"`
	Custody           custodyConfig  `yaml:"custody"`
}

type scheduleConfig struct {
	Schedule string `yaml:"schedule"`
	Timezone string `yaml:"timezone"`
}

type purgeConfig struct {
	Schedule string `yaml:"schedule"`
	Leeway   string `yaml:"leeway"`
}

type jwksConfig struct {
	MaxAge string `yaml:"max_age"`
	// Export writes the key set signed to a file on every key change
	// (docs/jwks-export.md).
	Export jwksExportConfig `yaml:"export"`
}

type tokensConfig struct {
	DefaultTTL string        `yaml:"default_ttl"`
	MaxTTL     string        `yaml:"max_ttl"`
	Refresh    refreshConfig `yaml:"refresh"`
}

type refreshConfig struct {
	IdleTTL     string `yaml:"idle_ttl"`
	AbsoluteTTL string `yaml:"absolute_ttl"`
}

type loginConfig struct {
	RateLimit      loginRateLimitConfig `yaml:"rate_limit"`
	CodeTTL        string               `yaml:"code_ttl"`
	TransactionTTL string               `yaml:"transaction_ttl"`
	Session        loginSessionConfig   `yaml:"session"`
}

type loginSessionConfig struct {
	IdleTTL     string `yaml:"idle_ttl"`
	AbsoluteTTL string `yaml:"absolute_ttl"`
}

type uiConfig struct {
	ProductName  string `yaml:"product_name"`
	LogoURL      string `yaml:"logo_url"`
	CSSFile      string `yaml:"css_file"`
	TemplatesDir string `yaml:"templates_dir"`
}

type loginRateLimitConfig struct {
	Window    string `yaml:"window"`
	PerUserIP int    `yaml:"per_user_ip"`
	PerUser   int    `yaml:"per_user"`
	PerIP     int    `yaml:"per_ip"`
}

type logConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	Access string `yaml:"access"`
}

type parsedConfig struct {
	shutdownTimeout time.Duration
	lockTimeout     time.Duration
	location        *time.Location // keys.rotation.timezone
	rotation        cron.Schedule
	rotationPeriod  time.Duration
	purge           cron.Schedule
	purgeLeeway     time.Duration
	jwksMaxAge      time.Duration
	exportTTL       time.Duration // jwks.export.ttl
	defaultTTL      time.Duration
	maxTTL          time.Duration
	refreshIdle     time.Duration
	refreshAbsolute time.Duration
	loginWindow     time.Duration
	codeTTL         time.Duration
	transactionTTL  time.Duration
	sessionIdle     time.Duration
	sessionAbsolute time.Duration
	trustedProxies  []*net.IPNet
	auditRetention  time.Duration
	// envWarnings name SIGNET_* variables that set nothing (typos).
	envWarnings []string
}

// defaultConfig is what `signet serve` runs with when nothing is configured.
func defaultConfig() Config {
	return Config{
		Issuer:  "http://localhost:8080",
		DataDir: "./data",
		HTTP:    httpConfig{Addr: "127.0.0.1:8080", TrustedProxies: []string{}, ShutdownTimeout: "15s"},
		Storage: storageConfig{Backend: "bolt", Bolt: boltConfig{LockTimeout: "1s"}, Etcd: defaultEtcdConfig()},
		Keys: keysConfig{
			Algorithms: []string{"RS256"},
			RSABits:    2048,
			Rotation:   scheduleConfig{Schedule: "@every 24h", Timezone: "UTC"},
			Purge:      purgeConfig{Schedule: "@every 10m", Leeway: "5m"},
			Custody:    custodyConfig{PKCS11: pkcs11Config{Algorithms: []string{}}},
		},
		JWKS:   jwksConfig{MaxAge: "300s", Export: jwksExportConfig{TTL: "24h"}},
		Tokens: tokensConfig{DefaultTTL: "15m", MaxTTL: "1h", Refresh: refreshConfig{IdleTTL: "336h", AbsoluteTTL: "2160h"}},
		Login: loginConfig{RateLimit: loginRateLimitConfig{Window: "1m", PerUserIP: 5, PerUser: 100, PerIP: 20},
			CodeTTL: "60s", TransactionTTL: "15m", Session: loginSessionConfig{IdleTTL: "24h", AbsoluteTTL: "168h"}},
		UI:    uiConfig{ProductName: "Signet"},
		Log:   logConfig{Level: "info", Format: "json", Access: "all"},
		Audit: defaultAuditConfig(),
	}
}

// loadConfigFile decodes path over c. Unknown fields are errors.
func loadConfigFile(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is the defaults
		}
		return fmt.Errorf("config %s: %s", path, cleanYAMLError(err))
	}
	return nil
}

// cleanYAMLError rewrites yaml.v3's Go-type wording into config wording.
func cleanYAMLError(err error) string {
	unknownField := regexp.MustCompile(`field (\S+) not found in type main\.(\w+)`)
	msg := err.Error()
	msg = unknownField.ReplaceAllString(msg, `unknown field "$1" (every field is listed in config.example.yaml)`)
	msg = strings.ReplaceAll(msg, "yaml: unmarshal errors:\n  ", "")
	return msg
}

// envOverrides are the SIGNET_* variables, each setting one config field.
// SIGNET_KEK is not here: it is a secret, read where the KEK is resolved.
type envOverride struct {
	name  string
	apply func(c *Config, v string) error
}

func envOverrides() []envOverride {
	return []envOverride{
		{"SIGNET_ISSUER", func(c *Config, v string) error { c.Issuer = v; return nil }},
		{"SIGNET_ADDR", func(c *Config, v string) error { c.HTTP.Addr = v; return nil }},
		{"SIGNET_ADMIN_ADDR", func(c *Config, v string) error { c.HTTP.AdminAddr = v; return nil }},
		{"SIGNET_METRICS_ADDR", func(c *Config, v string) error { c.HTTP.MetricsAddr = v; return nil }},
		{"SIGNET_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
		{"SIGNET_KEYS_ALGORITHMS", func(c *Config, v string) error { c.Keys.Algorithms = splitList(v); return nil }},
		{"SIGNET_KEYS_RSA_BITS", func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("SIGNET_KEYS_RSA_BITS: %q is not a number", v)
			}
			c.Keys.RSABits = n
			return nil
		}},
		{"SIGNET_KEYS_ENCRYPTION_KEY_FILE", func(c *Config, v string) error { c.Keys.EncryptionKeyFile = v; return nil }},
		{"SIGNET_KEYS_ROTATION_SCHEDULE", func(c *Config, v string) error { c.Keys.Rotation.Schedule = v; return nil }},
		{"SIGNET_KEYS_ROTATION_TIMEZONE", func(c *Config, v string) error { c.Keys.Rotation.Timezone = v; return nil }},
		{"SIGNET_KEYS_PURGE_SCHEDULE", func(c *Config, v string) error { c.Keys.Purge.Schedule = v; return nil }},
		{"SIGNET_JWKS_MAX_AGE", func(c *Config, v string) error { c.JWKS.MaxAge = v; return nil }},
		{"SIGNET_TOKENS_DEFAULT_TTL", func(c *Config, v string) error { c.Tokens.DefaultTTL = v; return nil }},
		{"SIGNET_TOKENS_MAX_TTL", func(c *Config, v string) error { c.Tokens.MaxTTL = v; return nil }},
		{"SIGNET_TOKENS_REFRESH_IDLE_TTL", func(c *Config, v string) error { c.Tokens.Refresh.IdleTTL = v; return nil }},
		{"SIGNET_TOKENS_REFRESH_ABSOLUTE_TTL", func(c *Config, v string) error { c.Tokens.Refresh.AbsoluteTTL = v; return nil }},
		{"SIGNET_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
		{"SIGNET_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
		{"SIGNET_AUDIT_RETENTION", func(c *Config, v string) error { c.Audit.Retention = v; return nil }},
		{"SIGNET_AUDIT_REPLICA", func(c *Config, v string) error { c.Audit.Replica = v; return nil }},
		{"SIGNET_LOG_ACCESS", func(c *Config, v string) error { c.Log.Access = v; return nil }},
	}
}

func applyEnv(c *Config, getenv func(string) string) error {
	var errs []error
	for _, o := range append(envOverrides(), storageEnvOverrides()...) {
		if v := getenv(o.name); v != "" {
			if err := o.apply(c, v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

// BoltPath is where the database lives.
func (c *Config) BoltPath() string {
	if c.Storage.Bolt.Path != "" {
		return c.Storage.Bolt.Path
	}
	return filepath.Join(c.DataDir, "signet.db")
}

// KEKPath is the key-encryption-key file used when SIGNET_KEK is unset.
func (c *Config) KEKPath() string {
	if c.Keys.EncryptionKeyFile != "" {
		return c.Keys.EncryptionKeyFile
	}
	return filepath.Join(c.DataDir, "kek")
}

// Validate checks every field and returns all problems at once, each naming
// its field and what to do.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	p := &c.parsed

	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("issuer", "%q: expected an absolute http(s) URL without query or fragment, such as https://auth.example.com", c.Issuer)
	} else if strings.HasSuffix(c.Issuer, "/") {
		bad("issuer", "%q: remove the trailing slash (the issuer is compared byte for byte)", c.Issuer)
	}
	if c.DataDir == "" {
		bad("data_dir", "empty: set a directory such as ./data")
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr", "%q: expected HOST:PORT such as 127.0.0.1:8080", c.HTTP.Addr)
	}
	if c.HTTP.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.AdminAddr); err != nil {
			bad("http.admin_addr", "%q: expected HOST:PORT such as 127.0.0.1:8081, or empty to serve /admin on http.addr", c.HTTP.AdminAddr)
		} else if c.HTTP.AdminAddr == c.HTTP.Addr && !strings.HasSuffix(c.HTTP.Addr, ":0") {
			bad("http.admin_addr", "%q is http.addr too: use another port, or leave it empty", c.HTTP.AdminAddr)
		}
	}
	if c.HTTP.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.MetricsAddr); err != nil {
			bad("http.metrics_addr", "%q: expected HOST:PORT such as 127.0.0.1:9090, or empty to serve /metrics on http.admin_addr (else http.addr)", c.HTTP.MetricsAddr)
		}
	}
	p.trustedProxies = nil
	for _, cidr := range c.HTTP.TrustedProxies {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			bad("http.trusted_proxies", "%q: expected a CIDR range such as 10.0.0.0/8 or 127.0.0.1/32", cidr)
			continue
		}
		p.trustedProxies = append(p.trustedProxies, n)
	}
	// duration parses a duration field. Zero is allowed only where min is 0
	// and zero has a meaning of its own (jwks.max_age 0: do not cache);
	// everywhere else a zero or negative value would be silently replaced by
	// a default or clamped somewhere downstream.
	duration := func(field, v string, dst *time.Duration, min time.Duration, example string) {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(field, "%q: expected a duration such as %s", v, example)
		case d < 0:
			bad(field, "%s is negative: set a positive duration such as %s", v, example)
		case d < min:
			bad(field, "%s is too short: set at least %s, such as %s", v, min, example)
		default:
			*dst = d
		}
	}
	duration("http.shutdown_timeout", c.HTTP.ShutdownTimeout, &p.shutdownTimeout, time.Second, "15s")
	duration("storage.bolt.lock_timeout", c.Storage.Bolt.LockTimeout, &p.lockTimeout, 10*time.Millisecond, "1s")
	duration("keys.purge.leeway", c.Keys.Purge.Leeway, &p.purgeLeeway, time.Second, "5m")
	duration("jwks.max_age", c.JWKS.MaxAge, &p.jwksMaxAge, 0, "300s (0s: verifiers must not cache)")
	duration("jwks.export.ttl", c.JWKS.Export.TTL, &p.exportTTL, time.Minute, "24h")
	duration("tokens.default_ttl", c.Tokens.DefaultTTL, &p.defaultTTL, time.Second, "15m")
	duration("tokens.max_ttl", c.Tokens.MaxTTL, &p.maxTTL, time.Second, "1h")
	if p.defaultTTL > 0 && p.maxTTL > 0 && p.defaultTTL > p.maxTTL {
		bad("tokens.default_ttl", "%s is longer than tokens.max_ttl %s: lower it or raise tokens.max_ttl", p.defaultTTL, p.maxTTL)
	}
	duration("tokens.refresh.idle_ttl", c.Tokens.Refresh.IdleTTL, &p.refreshIdle, time.Minute, "336h")
	duration("tokens.refresh.absolute_ttl", c.Tokens.Refresh.AbsoluteTTL, &p.refreshAbsolute, time.Minute, "2160h")
	if p.refreshIdle > 0 && p.refreshAbsolute > 0 && p.refreshIdle > p.refreshAbsolute {
		bad("tokens.refresh.idle_ttl", "%s is longer than tokens.refresh.absolute_ttl %s: lower it or raise the absolute lifetime", p.refreshIdle, p.refreshAbsolute)
	}
	if p.refreshAbsolute > 366*24*time.Hour {
		bad("tokens.refresh.absolute_ttl", "%s: at most 8784h (366 days)", p.refreshAbsolute)
	}
	duration("login.rate_limit.window", c.Login.RateLimit.Window, &p.loginWindow, time.Second, "1m")
	duration("login.code_ttl", c.Login.CodeTTL, &p.codeTTL, time.Second, "60s")
	if p.codeTTL > 10*time.Minute {
		bad("login.code_ttl", "%s: at most 10m (RFC 6749 section 4.1.2: codes are short-lived)", p.codeTTL)
	}
	duration("login.transaction_ttl", c.Login.TransactionTTL, &p.transactionTTL, time.Minute, "15m")
	duration("login.session.idle_ttl", c.Login.Session.IdleTTL, &p.sessionIdle, time.Minute, "24h")
	duration("login.session.absolute_ttl", c.Login.Session.AbsoluteTTL, &p.sessionAbsolute, time.Minute, "168h")
	if p.sessionIdle > 0 && p.sessionAbsolute > 0 && p.sessionIdle > p.sessionAbsolute {
		bad("login.session.idle_ttl", "%s is longer than login.session.absolute_ttl %s", p.sessionIdle, p.sessionAbsolute)
	}
	if c.UI.LogoURL != "" && !strings.HasPrefix(c.UI.LogoURL, "/") && !strings.HasPrefix(c.UI.LogoURL, "data:image/") {
		bad("ui.logo_url", "%q: a path on this server or a data:image URI (the login pages' CSP allows images from no other origin)", c.UI.LogoURL)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"login.rate_limit.per_user_ip", c.Login.RateLimit.PerUserIP}, {"login.rate_limit.per_user", c.Login.RateLimit.PerUser}, {"login.rate_limit.per_ip", c.Login.RateLimit.PerIP}} {
		if f.v < 1 || f.v > 1_000_000 {
			bad(f.name, "%d: expected a number of failed logins per window from 1 to 1000000", f.v)
		}
	}

	errs = append(errs, c.Storage.validate()...)
	errs = append(errs, c.Keys.Custody.validate(c.Keys.Algorithms)...)

	if len(c.Keys.Algorithms) == 0 {
		bad("keys.algorithms", "empty: list at least one of %v (RS256 is what every verifier supports)", keys.Algorithms())
	}
	seen := map[string]bool{}
	for _, a := range c.Keys.Algorithms {
		switch {
		case !keys.ValidAlgorithm(a):
			bad("keys.algorithms", "%q: unknown algorithm; supported: %v (HS* is never allowed: a shared secret cannot be published)", a, keys.Algorithms())
		case seen[a]:
			bad("keys.algorithms", "%q listed twice", a)
		}
		seen[a] = true
	}
	if !keys.ValidRSABits(c.Keys.RSABits) {
		bad("keys.rsa_bits", "%d: expected 2048, 3072 or 4096 (RFC 7518 requires at least 2048)", c.Keys.RSABits)
	}
	// Cron specs are read in keys.rotation.timezone (robfig/cron would use
	// the machine's local time), unless the spec names its own CRON_TZ=.
	loc, err := time.LoadLocation(c.Keys.Rotation.Timezone)
	if err != nil {
		bad("keys.rotation.timezone", "%q: expected an IANA time zone name such as UTC or Europe/Berlin (%v)", c.Keys.Rotation.Timezone, err)
		loc = time.UTC
	}
	p.location = loc
	schedule := func(field, spec string, dst *cron.Schedule) {
		// robfig/cron turns any "@every" interval under 1s, including zero
		// and negative ones, into every second: refuse those here.
		if d, ok := everyInterval(spec); ok && d < time.Second {
			if d <= 0 {
				bad(field, "%q: the interval must be positive, such as \"@every 24h\"", spec)
			} else {
				bad(field, "%q: the interval must be at least 1s, such as \"@every 24h\"", spec)
			}
			return
		}
		withTZ := spec
		if t := strings.TrimSpace(spec); !strings.HasPrefix(t, "CRON_TZ=") && !strings.HasPrefix(t, "TZ=") {
			withTZ = "CRON_TZ=" + loc.String() + " " + t
		}
		s, err := cron.ParseStandard(withTZ)
		if err != nil {
			bad(field, "%q: expected a cron spec such as \"@every 24h\" or \"0 3 * * 1\" (%v)", spec, err)
			return
		}
		*dst = s
	}
	schedule("keys.rotation.schedule", c.Keys.Rotation.Schedule, &p.rotation)
	schedule("keys.purge.schedule", c.Keys.Purge.Schedule, &p.purge)
	if p.rotation != nil {
		p.rotationPeriod = shortestPeriod(p.rotation, time.Now())
		if p.rotationPeriod <= 0 {
			bad("keys.rotation.schedule", "%q never fires", c.Keys.Rotation.Schedule)
		} else if p.jwksMaxAge > p.rotationPeriod {
			bad("jwks.max_age", "%s is longer than the rotation period %s of keys.rotation.schedule %q: "+
				"a new key could sign before verifiers' cached JWKS has it; lower jwks.max_age or rotate less often",
				p.jwksMaxAge, p.rotationPeriod, c.Keys.Rotation.Schedule)
		}
	}
	c.validateAudit(bad)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: expected debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q: expected json or text", c.Log.Format)
	}
	switch c.Log.Access {
	case authority.AccessLogAll, authority.AccessLogErrors, authority.AccessLogOff:
	default:
		bad("log.access", "%q: expected all (every request but health checks and the JWKS), errors (status 400 and above) or off", c.Log.Access)
	}
	return errors.Join(errs...)
}

// everyInterval returns the interval of an "@every D" spec (after an
// optional CRON_TZ= or TZ= prefix, as robfig/cron reads it), and false for
// any other spec or an interval that does not parse (cron reports that).
func everyInterval(spec string) (time.Duration, bool) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		i := strings.IndexAny(spec, " \t")
		if i < 0 {
			return 0, false
		}
		spec = strings.TrimSpace(spec[i:])
	}
	rest, ok := strings.CutPrefix(spec, "@every ")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(rest))
	if err != nil {
		return 0, false
	}
	return d, true
}

// shortestPeriod is the smallest gap between consecutive firings of s over
// its next 200 firings: the worst case a pending key waits before it signs.
func shortestPeriod(s cron.Schedule, from time.Time) time.Duration {
	prev := s.Next(from)
	if prev.IsZero() {
		return 0
	}
	shortest := time.Duration(0)
	for range 200 {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		if gap := next.Sub(prev); shortest == 0 || gap < shortest {
			shortest = gap
		}
		prev = next
	}
	return shortest
}
