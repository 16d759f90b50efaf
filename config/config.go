// Package config is Signet's configuration: the YAML file, the SIGNET_*
// environment overrides, the defaults, and the validation that turns them
// into the values the server runs with. Every problem is reported in one
// round, each naming its field and what to do; an unknown field names the
// one it was probably meant to be.
//
// serve and the offline commands read the same configuration through Load;
// the command line's flags are applied last by the caller (Sources.Set).
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/upstream"
)

// Config mirrors config.example.yaml. Durations and schedules stay strings
// here and are parsed in Validate, where the field's name is known, so every
// error can name it.
type Config struct {
	// Issuer is the public URL; empty means http://localhost:PORT of
	// HTTP.Addr (Validate fills it in and sets Parsed.IssuerFromAddr).
	Issuer  string  `yaml:"issuer"`
	DataDir string  `yaml:"data_dir"`
	HTTP    HTTP    `yaml:"http"`
	Storage Storage `yaml:"storage"`
	Keys    Keys    `yaml:"keys"`
	JWKS    JWKS    `yaml:"jwks"`
	Tokens  Tokens  `yaml:"tokens"`
	Login   Login   `yaml:"login"`
	UI      UI      `yaml:"ui"`
	Log     Log     `yaml:"log"`
	Audit   Audit   `yaml:"audit"`
	Dev     bool    `yaml:"dev"`

	ClientAuth ClientAuth `yaml:"client_auth"` // outbound.go
	Outbound   Outbound   `yaml:"outbound"`
	// DynamicClients: registration and metadata documents (registration.go).
	DynamicClients DynamicClients `yaml:"dynamic_clients"`
	DPoP           DPoP           `yaml:"dpop"`       // dpop.go
	Federation     Federation     `yaml:"federation"` // federation.go

	// Parsed is filled in by Validate.
	Parsed Parsed `yaml:"-"`
}

type HTTP struct {
	Addr            string   `yaml:"addr"`
	AdminAddr       string   `yaml:"admin_addr"`
	MetricsAddr     string   `yaml:"metrics_addr"`
	TrustedProxies  []string `yaml:"trusted_proxies"`
	ShutdownTimeout string   `yaml:"shutdown_timeout"`
}

type Storage struct {
	Backend string `yaml:"backend"`
	Bolt    Bolt   `yaml:"bolt"`
	Etcd    Etcd   `yaml:"etcd"`
}

type Bolt struct {
	Path        string `yaml:"path"`
	LockTimeout string `yaml:"lock_timeout"`
}

// Etcd is storage.etcd.
type Etcd struct {
	Endpoints      []string `yaml:"endpoints"`
	Prefix         string   `yaml:"prefix"`
	DialTimeout    string   `yaml:"dial_timeout"`
	RequestTimeout string   `yaml:"request_timeout"`
	MaxStaleness   string   `yaml:"max_staleness"`
	LeaderTTL      string   `yaml:"leader_ttl"`
	TLS            EtcdTLS  `yaml:"tls"`
	Username       string   `yaml:"username"`
	PasswordFile   string   `yaml:"password_file"`
}

type EtcdTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type Keys struct {
	Algorithms        []string `yaml:"algorithms"`
	RSABits           int      `yaml:"rsa_bits"`
	EncryptionKeyFile string   `yaml:"encryption_key_file"`
	Rotation          Schedule `yaml:"rotation"`
	Purge             Purge    `yaml:"purge"`
	Custody           Custody  `yaml:"custody"` // custody.go
}

type Schedule struct {
	Schedule string `yaml:"schedule"`
	Timezone string `yaml:"timezone"`
}

type Purge struct {
	Schedule string `yaml:"schedule"`
	Leeway   string `yaml:"leeway"`
}

type JWKS struct {
	MaxAge string `yaml:"max_age"`
	// Export writes the key set signed to a file on every key change
	// (docs/jwks-export.md).
	Export JWKSExport `yaml:"export"`
}

type Tokens struct {
	DefaultTTL string  `yaml:"default_ttl"`
	MaxTTL     string  `yaml:"max_ttl"`
	Refresh    Refresh `yaml:"refresh"`
}

type Refresh struct {
	IdleTTL     string `yaml:"idle_ttl"`
	AbsoluteTTL string `yaml:"absolute_ttl"`
}

type Login struct {
	RateLimit      LoginRateLimit `yaml:"rate_limit"`
	CodeTTL        string         `yaml:"code_ttl"`
	TransactionTTL string         `yaml:"transaction_ttl"`
	Session        LoginSession   `yaml:"session"`
	// AdminScopePasswordOnly lets the password grant give signet:admin
	// without a second factor (docs/login.md, Second factors).
	AdminScopePasswordOnly bool `yaml:"admin_scope_password_only"`
	// SecondFactor is who must sign in with a second factor (docs/login.md,
	// Requiring a second factor).
	SecondFactor LoginSecondFactor `yaml:"second_factor"`
	// PasswordLogin shows and accepts the username and password form;
	// Upstreams are the providers users may sign in through (upstream.go).
	PasswordLogin bool       `yaml:"password_login"`
	Upstreams     []Upstream `yaml:"upstreams"`
	// Passkeys are the WebAuthn passkeys of the hosted pages.
	Passkeys LoginPasskeys `yaml:"passkeys"`

	upstreams []upstream.Provider // filled in by Validate
}

type LoginPasskeys struct {
	// Passwordless offers "Sign in with a passkey" on the sign-in page: a
	// passkey that verifies its user signs in alone (docs/login.md,
	// Passwordless passkeys). false keeps passkeys a second factor.
	Passwordless bool `yaml:"passwordless"`
}

type LoginSecondFactor struct {
	// RequiredFor is none, admins or all.
	RequiredFor string `yaml:"required_for"`
	// Grace is how long a user without a factor may still sign in with the
	// password alone once the requirement applies to them.
	Grace string `yaml:"grace"`
}

type LoginSession struct {
	IdleTTL     string `yaml:"idle_ttl"`
	AbsoluteTTL string `yaml:"absolute_ttl"`
}

type LoginRateLimit struct {
	Window    string `yaml:"window"`
	PerUserIP int    `yaml:"per_user_ip"`
	PerUser   int    `yaml:"per_user"`
	PerIP     int    `yaml:"per_ip"`
}

type UI struct {
	ProductName  string `yaml:"product_name"`
	LogoURL      string `yaml:"logo_url"`
	CSSFile      string `yaml:"css_file"`
	TemplatesDir string `yaml:"templates_dir"`
}

type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	Access string `yaml:"access"`
}

// Audit is the audit: section.
type Audit struct {
	// Retention is how long audit events are kept; the purge job (on
	// keys.purge.schedule) deletes older ones. Default 2160h (90 days).
	Retention string `yaml:"retention"`
	// Replica names this server in the events it writes (cron jobs, key
	// changes); empty means the hostname.
	Replica string `yaml:"replica"`
}

// Parsed holds the values Validate parsed out of the strings above.
type Parsed struct {
	ShutdownTimeout time.Duration
	LockTimeout     time.Duration
	Location        *time.Location // keys.rotation.timezone
	Rotation        cron.Schedule
	RotationPeriod  time.Duration
	Purge           cron.Schedule
	PurgeLeeway     time.Duration
	JWKSMaxAge      time.Duration
	ExportTTL       time.Duration // jwks.export.ttl
	DefaultTTL      time.Duration
	MaxTTL          time.Duration
	RefreshIdle     time.Duration
	RefreshAbsolute time.Duration
	LoginWindow     time.Duration
	CodeTTL         time.Duration
	TransactionTTL  time.Duration
	SessionIdle     time.Duration
	SessionAbsolute time.Duration
	FactorGrace     time.Duration // login.second_factor.grace
	TrustedProxies  []*net.IPNet
	AuditRetention  time.Duration
	// IssuerFromAddr: no issuer was configured, so Validate made it from
	// http.addr (serve makes it again from the bound port for port 0).
	IssuerFromAddr bool
	derivedIssuer  string
	// EnvWarnings name SIGNET_* variables that set nothing (typos).
	EnvWarnings []string
}

// Default is what `signet serve` runs with when nothing is configured.
func Default() Config {
	return Config{
		DataDir: "./data",
		HTTP:    HTTP{Addr: "127.0.0.1:8080", TrustedProxies: []string{}, ShutdownTimeout: "15s"},
		Storage: Storage{Backend: "bolt", Bolt: Bolt{LockTimeout: "1s"}, Etcd: Etcd{
			Endpoints:      []string{},
			Prefix:         etcd.DefaultPrefix,
			DialTimeout:    "5s",
			RequestTimeout: "5s",
			MaxStaleness:   "5s",
			LeaderTTL:      "10s",
		}},
		Keys: Keys{
			Algorithms: []string{"RS256"},
			RSABits:    2048,
			Rotation:   Schedule{Schedule: "@every 24h", Timezone: "UTC"},
			Purge:      Purge{Schedule: "@every 10m", Leeway: "5m"},
			Custody:    Custody{PKCS11: PKCS11{Algorithms: []string{}}},
		},
		JWKS:   JWKS{MaxAge: "300s", Export: JWKSExport{TTL: "24h"}},
		Tokens: Tokens{DefaultTTL: "15m", MaxTTL: "1h", Refresh: Refresh{IdleTTL: "336h", AbsoluteTTL: "2160h"}},
		Login: Login{RateLimit: LoginRateLimit{Window: "1m", PerUserIP: 5, PerUser: 100, PerIP: 20},
			CodeTTL: "60s", TransactionTTL: "15m", Session: LoginSession{IdleTTL: "24h", AbsoluteTTL: "168h"},
			PasswordLogin: true, Upstreams: []Upstream{}, Passkeys: LoginPasskeys{Passwordless: true},
			SecondFactor: LoginSecondFactor{RequiredFor: "none", Grace: "168h"}},
		UI:    UI{ProductName: "Signet"},
		Log:   Log{Level: "info", Format: "json", Access: "all"},
		Audit: Audit{Retention: "2160h"},

		ClientAuth: defaultClientAuth(),
		Federation: Federation{Issuers: []FederationIssuer{}},
		Outbound:   defaultOutbound(),

		DynamicClients: defaultDynamicClients(),
		DPoP:           defaultDPoP(),
	}
}

// Sources says where a configuration comes from, applied in this order over
// the defaults.
type Sources struct {
	File    string              // a YAML file; "" for none
	Getenv  func(string) string // the SIGNET_* overrides; nil for none
	Environ []string            // the environment, to warn about SIGNET_* typos; nil for none
	Set     func(c *Config)     // the command line's flags, applied last; nil for none
}

// Load builds and validates a configuration. A file that cannot be read or
// is not YAML is the one error; otherwise every unknown field, wrong type,
// bad SIGNET_* value and invalid value is reported in the same error.
func Load(s Sources) (Config, error) {
	c := Default()
	var errs []error
	if s.File != "" {
		fieldErrs, err := decodeFile(&c, s.File)
		if err != nil {
			return Config{}, err
		}
		errs = append(errs, fieldErrs...)
	}
	if s.Getenv != nil {
		errs = append(errs, applyEnv(&c, s.Getenv)...)
	}
	if s.Set != nil {
		s.Set(&c)
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	c.Parsed.EnvWarnings = UnknownEnv(s.Environ)
	return c, nil
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

// ReplicaName is the name this server writes into audit events.
func (c *Config) ReplicaName() string {
	if c.Audit.Replica != "" {
		return c.Audit.Replica
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}
