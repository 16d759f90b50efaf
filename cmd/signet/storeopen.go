package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
)

// etcdConfig is storage.etcd in the configuration.
type etcdConfig struct {
	Endpoints      []string      `yaml:"endpoints"`
	Prefix         string        `yaml:"prefix"`
	DialTimeout    string        `yaml:"dial_timeout"`
	RequestTimeout string        `yaml:"request_timeout"`
	MaxStaleness   string        `yaml:"max_staleness"`
	LeaderTTL      string        `yaml:"leader_ttl"`
	TLS            etcdTLSConfig `yaml:"tls"`
	Username       string        `yaml:"username"`
	PasswordFile   string        `yaml:"password_file"`
}

type etcdTLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

func defaultEtcdConfig() etcdConfig {
	return etcdConfig{
		Endpoints:      []string{},
		Prefix:         etcd.DefaultPrefix,
		DialTimeout:    "5s",
		RequestTimeout: "5s",
		MaxStaleness:   "5s",
		LeaderTTL:      "10s",
	}
}

// storageEnvOverrides are the SIGNET_STORAGE_* variables.
func storageEnvOverrides() []envOverride {
	e := func(c *Config) *etcdConfig { return &c.Storage.Etcd }
	return []envOverride{
		{"SIGNET_STORAGE_BACKEND", func(c *Config, v string) error { c.Storage.Backend = v; return nil }},
		{"SIGNET_STORAGE_ETCD_ENDPOINTS", func(c *Config, v string) error { e(c).Endpoints = splitList(v); return nil }},
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

// validate checks storage.backend and, for etcd, storage.etcd; each error
// names its field.
func (s *storageConfig) validate() []error {
	switch s.Backend {
	case "bolt":
		return nil
	case "etcd":
		_, errs := s.Etcd.options()
		return errs
	default:
		return []error{fmt.Errorf("storage.backend: %q: expected bolt or etcd", s.Backend)}
	}
}

// options turns storage.etcd into etcd.Options (without the password, read
// at open) and reports every invalid field.
func (e *etcdConfig) options() (etcd.Options, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("storage.etcd.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(e.Endpoints) == 0 {
		bad("endpoints", "empty: list the client URL of every etcd member, such as [http://10.0.0.1:2379, http://10.0.0.2:2379, http://10.0.0.3:2379]")
	}
	for _, ep := range e.Endpoints {
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" || u.Path != "" {
			bad("endpoints", "%q: expected http://HOST:PORT or https://HOST:PORT", ep)
		}
	}
	if e.Prefix == "" {
		bad("prefix", "empty: set a prefix such as signet/ (deployments sharing a cluster need different ones)")
	}
	duration := func(field, v string, min time.Duration) time.Duration {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(field, "%q: expected a duration such as 5s", v)
		case d < min:
			bad(field, "%s: must be at least %s", v, min)
		}
		return d
	}
	opts := etcd.Options{
		Endpoints:      e.Endpoints,
		Prefix:         e.Prefix,
		DialTimeout:    duration("dial_timeout", e.DialTimeout, 100*time.Millisecond),
		RequestTimeout: duration("request_timeout", e.RequestTimeout, 100*time.Millisecond),
		TLS:            etcd.TLSFiles{CAFile: e.TLS.CAFile, CertFile: e.TLS.CertFile, KeyFile: e.TLS.KeyFile},
		Username:       e.Username,
	}
	duration("max_staleness", e.MaxStaleness, time.Second)
	duration("leader_ttl", e.LeaderTTL, time.Second)
	if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together: set both (client certificate authentication) or neither")
	}
	if (e.Username == "") != (e.PasswordFile == "") {
		bad("username", "username and password_file go together: set both (etcd authentication) or neither")
	}
	return opts, errs
}

// readPasswordFile reads an etcd password from a file only its owner can
// read, as for the KEK; one trailing newline is not part of it.
func readPasswordFile(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("storage.etcd.password_file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("storage.etcd.password_file %s: mode %v lets other users read it: run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("storage.etcd.password_file: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("storage.etcd.password_file %s is empty", path)
	}
	return p, nil
}

// openConfigStore opens the store the configuration names; log may be nil.
func openConfigStore(ctx context.Context, c *Config, log *slog.Logger) (storage.Store, error) {
	st, err := openStoreUnchecked(ctx, c, log)
	if err != nil {
		return nil, err
	}
	if err := checkSchemaOffline(ctx, st); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", storeName(c), err)
	}
	return st, nil
}

// openStoreUnchecked opens the configured store without the schema check:
// serve migrates an older schema itself (migrateSchema) after opening.
func openStoreUnchecked(ctx context.Context, c *Config, log *slog.Logger) (storage.Store, error) {
	switch c.Storage.Backend {
	case "etcd":
		opts, errs := c.Storage.Etcd.options()
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		if c.Storage.Etcd.PasswordFile != "" {
			p, err := readPasswordFile(c.Storage.Etcd.PasswordFile)
			if err != nil {
				return nil, err
			}
			opts.Password = p
		}
		if log != nil {
			opts.Logger = log.With("component", "etcd")
		}
		st, err := etcd.Open(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("storage.backend etcd: %w", err)
		}
		return st, nil
	default:
		return openBoltFile(c.BoltPath(), c.parsed.lockTimeout)
	}
}

// storeName says which store the configuration names, for messages.
func storeName(c *Config) string {
	if c.Storage.Backend == "etcd" {
		return fmt.Sprintf("etcd %s prefix %s", strings.Join(c.Storage.Etcd.Endpoints, ","), c.Storage.Etcd.Prefix)
	}
	return c.BoltPath()
}

// errSharedKEK is why Signet never creates a KEK for an etcd store: every
// replica would create its own, and none could read the others' keys.
func errSharedKEK(path string) error {
	return fmt.Errorf("storage.backend etcd: no key-encryption key (SIGNET_KEK unset, no file at %s): "+
		"every replica needs the same one, so Signet does not create it; "+
		"make one (openssl rand -base64 32) and give it to every replica as SIGNET_KEK or keys.encryption_key_file", path)
}
