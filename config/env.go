package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// envOverride is one SIGNET_* variable, setting one config field.
type envOverride struct {
	name  string
	apply func(c *Config, v string) error
}

// envOverrides are the SIGNET_* variables that set config fields. SIGNET_KEK
// is not here: it is a secret, read where the KEK is resolved.
func envOverrides() []envOverride {
	e := func(c *Config) *Etcd { return &c.Storage.Etcd }
	return []envOverride{
		{"SIGNET_ISSUER", func(c *Config, v string) error { c.Issuer = v; return nil }},
		{"SIGNET_ADDR", func(c *Config, v string) error { c.HTTP.Addr = v; return nil }},
		{"SIGNET_ADMIN_ADDR", func(c *Config, v string) error { c.HTTP.AdminAddr = v; return nil }},
		{"SIGNET_METRICS_ADDR", func(c *Config, v string) error { c.HTTP.MetricsAddr = v; return nil }},
		{"SIGNET_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
		{"SIGNET_KEYS_ALGORITHMS", func(c *Config, v string) error { c.Keys.Algorithms = SplitList(v); return nil }},
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
		{"SIGNET_LOG_ACCESS", func(c *Config, v string) error { c.Log.Access = v; return nil }},
		{"SIGNET_AUDIT_RETENTION", func(c *Config, v string) error { c.Audit.Retention = v; return nil }},
		{"SIGNET_AUDIT_REPLICA", func(c *Config, v string) error { c.Audit.Replica = v; return nil }},
		{"SIGNET_STORAGE_BACKEND", func(c *Config, v string) error { c.Storage.Backend = v; return nil }},
		{"SIGNET_STORAGE_ETCD_ENDPOINTS", func(c *Config, v string) error { e(c).Endpoints = SplitList(v); return nil }},
		{"SIGNET_STORAGE_ETCD_PREFIX", func(c *Config, v string) error { e(c).Prefix = v; return nil }},
		{"SIGNET_STORAGE_ETCD_DIAL_TIMEOUT", func(c *Config, v string) error { e(c).DialTimeout = v; return nil }},
		{"SIGNET_STORAGE_ETCD_REQUEST_TIMEOUT", func(c *Config, v string) error { e(c).RequestTimeout = v; return nil }},
		{"SIGNET_STORAGE_ETCD_MAX_STALENESS", func(c *Config, v string) error { e(c).MaxStaleness = v; return nil }},
		{"SIGNET_STORAGE_ETCD_LEADER_TTL", func(c *Config, v string) error { e(c).LeaderTTL = v; return nil }},
		{"SIGNET_STORAGE_ETCD_TLS_CA_FILE", func(c *Config, v string) error { e(c).TLS.CAFile = v; return nil }},
		{"SIGNET_STORAGE_ETCD_TLS_CERT_FILE", func(c *Config, v string) error { e(c).TLS.CertFile = v; return nil }},
		{"SIGNET_STORAGE_ETCD_TLS_KEY_FILE", func(c *Config, v string) error { e(c).TLS.KeyFile = v; return nil }},
		{"SIGNET_STORAGE_ETCD_USERNAME", func(c *Config, v string) error { e(c).Username = v; return nil }},
		{"SIGNET_STORAGE_ETCD_PASSWORD_FILE", func(c *Config, v string) error { e(c).PasswordFile = v; return nil }},
	}
}

// ApplyEnv sets the fields named by the SIGNET_* variables getenv returns
// and reports every value that cannot be read.
func ApplyEnv(c *Config, getenv func(string) string) error {
	return errors.Join(applyEnv(c, getenv)...)
}

func applyEnv(c *Config, getenv func(string) string) []error {
	var errs []error
	for _, o := range envOverrides() {
		if v := getenv(o.name); v != "" {
			if err := o.apply(c, v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// SplitList reads a list from an environment variable: items separated by
// commas or spaces.
func SplitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

// KnownEnv lists every SIGNET_* variable signet reads: the config overrides
// and the ones read where they are used.
func KnownEnv() []string {
	names := []string{"SIGNET_CONFIG", "SIGNET_KEK", "SIGNET_PKCS11_PIN", "SIGNET_CLIENT_ID", "SIGNET_CLIENT_SECRET"}
	for _, o := range envOverrides() {
		names = append(names, o.name)
	}
	return names
}

// UnknownEnv returns a warning for each SIGNET_* variable in environ that
// signet does not read, naming the closest known one. A variable is only a
// warning, not an error as an unknown config field is: the environment is
// shared with other programs.
func UnknownEnv(environ []string) []string {
	known := KnownEnv()
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SIGNET_") || slices.Contains(known, name) {
			continue
		}
		w := fmt.Sprintf("unknown environment variable %s is ignored", name)
		if s := Closest(name, known); s != "" {
			w += fmt.Sprintf(": did you mean %s?", s)
		} else {
			w += "; signet reads " + strings.Join(slices.Sorted(slices.Values(known)), ", ")
		}
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// Closest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be a typo of it (at most 2 edits, or a third of
// its length for long names). The CLI uses it for commands too: one notion
// of "did you mean" for every name a user types.
func Closest(s string, candidates []string) string {
	best, bestD := "", max(2, len(s)/3)+1
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
