package config

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/signet-auth/signet/outbound"
)

// ClientAuth is the client_auth: section (private_key_jwt).
type ClientAuth struct {
	AssertionMaxLifetime string `yaml:"assertion_max_lifetime"`

	// Lifetime is AssertionMaxLifetime parsed by Validate.
	Lifetime time.Duration `yaml:"-"`
}

// Outbound is the outbound: section: the fetcher of every URL
// Signet fetches on someone else's word (package outbound).
type Outbound struct {
	AllowNetworks   []string `yaml:"allow_networks"`
	CAFile          string   `yaml:"ca_file"`
	Timeout         string   `yaml:"timeout"`
	MaxBodyBytes    int64    `yaml:"max_body_bytes"`
	MinCache        string   `yaml:"min_cache"`
	MaxCache        string   `yaml:"max_cache"`
	RefetchInterval string   `yaml:"refetch_interval"`

	parsed outbound.Options // filled in by Validate
}

func defaultClientAuth() ClientAuth { return ClientAuth{AssertionMaxLifetime: "5m"} }

func defaultOutbound() Outbound {
	return Outbound{AllowNetworks: []string{}, Timeout: "5s", MaxBodyBytes: outbound.DefaultMaxBody,
		MinCache: "1m", MaxCache: "1h", RefetchInterval: "30s"}
}

// validateOutbound checks the client_auth: and outbound: sections; bad
// reports a field's problem.
func (c *Config) validateOutbound(bad func(field, format string, args ...any)) {
	dur := func(field, v string, min, max time.Duration, example string) time.Duration {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(field, "%q: expected a duration such as %s", v, example)
		case d < min || d > max:
			bad(field, "%s: expected between %s and %s, such as %s", v, min, max, example)
		default:
			return d
		}
		return 0
	}
	c.ClientAuth.Lifetime = dur("client_auth.assertion_max_lifetime", c.ClientAuth.AssertionMaxLifetime, 10*time.Second, time.Hour, "5m")
	o := &c.Outbound
	o.parsed = outbound.Options{AllowLoopback: outbound.IsLoopbackURL(c.Issuer)}
	for _, n := range o.AllowNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			bad("outbound.allow_networks", "%q: expected a CIDR range such as 10.20.0.0/16", n)
			continue
		}
		o.parsed.AllowNetworks = append(o.parsed.AllowNetworks, p.Masked())
	}
	o.parsed.Timeout = dur("outbound.timeout", o.Timeout, 100*time.Millisecond, time.Minute, "5s")
	o.parsed.MinTTL = dur("outbound.min_cache", o.MinCache, time.Second, 24*time.Hour, "1m")
	o.parsed.MaxTTL = dur("outbound.max_cache", o.MaxCache, time.Second, 7*24*time.Hour, "1h")
	if o.parsed.MinTTL > 0 && o.parsed.MaxTTL > 0 && o.parsed.MinTTL > o.parsed.MaxTTL {
		bad("outbound.min_cache", "%s is longer than outbound.max_cache %s", o.MinCache, o.MaxCache)
	}
	o.parsed.RefetchEvery = dur("outbound.refetch_interval", o.RefetchInterval, time.Second, time.Hour, "30s")
	if o.MaxBodyBytes < 1024 || o.MaxBodyBytes > 16<<20 {
		bad("outbound.max_body_bytes", "%d: expected between 1024 and 16777216 (a JWK Set is a few KiB)", o.MaxBodyBytes)
	}
	o.parsed.MaxBody = o.MaxBodyBytes
	if o.CAFile != "" {
		if _, err := os.Stat(o.CAFile); err != nil {
			bad("outbound.ca_file", "%q: %v", o.CAFile, err)
		}
	}
}

// OutboundFetcher builds the fetcher the outbound: section describes.
func (c *Config) OutboundFetcher(log *slog.Logger) (*outbound.Fetcher, error) {
	o := c.Outbound.parsed
	o.Logger = log
	if c.Outbound.CAFile != "" {
		pem, err := os.ReadFile(c.Outbound.CAFile)
		if err != nil {
			return nil, fmt.Errorf("outbound.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("outbound.ca_file %s: no PEM certificate in it", c.Outbound.CAFile)
		}
		o.RootCAs = pool
	}
	return outbound.New(o), nil
}
