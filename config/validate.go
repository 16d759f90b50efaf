package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage/etcd"
)

// Validate checks every field, fills in Parsed, and returns all problems at
// once, each naming its field and what to do.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	p := &c.Parsed

	_, _, addrErr := net.SplitHostPort(c.HTTP.Addr)
	if addrErr != nil {
		bad("http.addr", "%q: expected HOST:PORT such as 127.0.0.1:8080", c.HTTP.Addr)
	}
	// An issuer made from http.addr by an earlier Validate follows a changed
	// http.addr; one set since is kept.
	if c.Issuer == "" || p.IssuerFromAddr && c.Issuer == p.derivedIssuer {
		c.Issuer, p.IssuerFromAddr = "", false
		if addrErr == nil {
			c.Issuer, p.IssuerFromAddr = IssuerFor(c.HTTP.Addr), true
		}
	} else {
		p.IssuerFromAddr = false
	}
	p.derivedIssuer = ""
	if p.IssuerFromAddr {
		p.derivedIssuer = c.Issuer
	}
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		if c.Issuer != "" || addrErr == nil {
			bad("issuer", "%q: expected an absolute http(s) URL without query or fragment, such as https://auth.example.com", c.Issuer)
		}
	} else if strings.HasSuffix(c.Issuer, "/") {
		bad("issuer", "%q: remove the trailing slash (the issuer is compared byte for byte)", c.Issuer)
	}
	if c.DataDir == "" {
		bad("data_dir", "empty: set a directory such as ./data")
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
	p.TrustedProxies = nil
	for _, cidr := range c.HTTP.TrustedProxies {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			bad("http.trusted_proxies", "%q: expected a CIDR range such as 10.0.0.0/8 or 127.0.0.1/32", cidr)
			continue
		}
		p.TrustedProxies = append(p.TrustedProxies, n)
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
	duration("http.shutdown_timeout", c.HTTP.ShutdownTimeout, &p.ShutdownTimeout, time.Second, "15s")
	duration("storage.bolt.lock_timeout", c.Storage.Bolt.LockTimeout, &p.LockTimeout, 10*time.Millisecond, "1s")
	duration("keys.purge.leeway", c.Keys.Purge.Leeway, &p.PurgeLeeway, time.Second, "5m")
	duration("jwks.max_age", c.JWKS.MaxAge, &p.JWKSMaxAge, 0, "300s (0s: verifiers must not cache)")
	duration("jwks.export.ttl", c.JWKS.Export.TTL, &p.ExportTTL, time.Minute, "24h")
	duration("tokens.default_ttl", c.Tokens.DefaultTTL, &p.DefaultTTL, time.Second, "15m")
	duration("tokens.max_ttl", c.Tokens.MaxTTL, &p.MaxTTL, time.Second, "1h")
	if p.DefaultTTL > 0 && p.MaxTTL > 0 && p.DefaultTTL > p.MaxTTL {
		bad("tokens.default_ttl", "%s is longer than tokens.max_ttl %s: lower it or raise tokens.max_ttl", p.DefaultTTL, p.MaxTTL)
	}
	duration("tokens.refresh.idle_ttl", c.Tokens.Refresh.IdleTTL, &p.RefreshIdle, time.Minute, "336h")
	duration("tokens.refresh.absolute_ttl", c.Tokens.Refresh.AbsoluteTTL, &p.RefreshAbsolute, time.Minute, "2160h")
	if p.RefreshIdle > 0 && p.RefreshAbsolute > 0 && p.RefreshIdle > p.RefreshAbsolute {
		bad("tokens.refresh.idle_ttl", "%s is longer than tokens.refresh.absolute_ttl %s: lower it or raise the absolute lifetime", p.RefreshIdle, p.RefreshAbsolute)
	}
	if p.RefreshAbsolute > 366*24*time.Hour {
		bad("tokens.refresh.absolute_ttl", "%s: at most 8784h (366 days)", p.RefreshAbsolute)
	}
	duration("login.rate_limit.window", c.Login.RateLimit.Window, &p.LoginWindow, time.Second, "1m")
	duration("login.code_ttl", c.Login.CodeTTL, &p.CodeTTL, time.Second, "60s")
	if p.CodeTTL > 10*time.Minute {
		bad("login.code_ttl", "%s: at most 10m (RFC 6749 section 4.1.2: codes are short-lived)", p.CodeTTL)
	}
	duration("login.transaction_ttl", c.Login.TransactionTTL, &p.TransactionTTL, time.Minute, "15m")
	duration("login.session.idle_ttl", c.Login.Session.IdleTTL, &p.SessionIdle, time.Minute, "24h")
	duration("login.session.absolute_ttl", c.Login.Session.AbsoluteTTL, &p.SessionAbsolute, time.Minute, "168h")
	if p.SessionIdle > 0 && p.SessionAbsolute > 0 && p.SessionIdle > p.SessionAbsolute {
		bad("login.session.idle_ttl", "%s is longer than login.session.absolute_ttl %s", p.SessionIdle, p.SessionAbsolute)
	}
	switch c.Login.SecondFactor.RequiredFor {
	case "none", "admins", "all":
	default:
		bad("login.second_factor.required_for", "%q: expected none (only users an operator requires it of), admins (users with the signet:admin role) or all", c.Login.SecondFactor.RequiredFor)
	}
	duration("login.second_factor.grace", c.Login.SecondFactor.Grace, &p.FactorGrace, 0, "168h (0s: users without a second factor set one up at their next sign-in)")
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

	switch c.Storage.Backend {
	case "bolt":
	case "etcd":
		_, etcdErrs := c.Storage.Etcd.Options()
		errs = append(errs, etcdErrs...)
	default:
		bad("storage.backend", "%q: expected bolt or etcd", c.Storage.Backend)
	}
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
	p.Location = loc
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
	schedule("keys.rotation.schedule", c.Keys.Rotation.Schedule, &p.Rotation)
	schedule("keys.purge.schedule", c.Keys.Purge.Schedule, &p.Purge)
	if p.Rotation != nil {
		p.RotationPeriod = shortestPeriod(p.Rotation, time.Now())
		if p.RotationPeriod <= 0 {
			bad("keys.rotation.schedule", "%q never fires", c.Keys.Rotation.Schedule)
		} else if p.JWKSMaxAge > p.RotationPeriod {
			bad("jwks.max_age", "%s is longer than the rotation period %s of keys.rotation.schedule %q: "+
				"a new key could sign before verifiers' cached JWKS has it; lower jwks.max_age or rotate less often",
				p.JWKSMaxAge, p.RotationPeriod, c.Keys.Rotation.Schedule)
		}
	}
	d, err := time.ParseDuration(c.Audit.Retention)
	switch {
	case err != nil:
		bad("audit.retention", "%q: expected a duration such as 2160h (90 days)", c.Audit.Retention)
	case d <= 0:
		bad("audit.retention", "%s: must be positive (audit events are kept this long; 2160h is 90 days)", c.Audit.Retention)
	default:
		p.AuditRetention = d
	}
	c.validateOutbound(bad)
	c.validateDynamicClients(bad)
	c.validateDPoP(bad)
	c.validateFederation(bad)
	c.validateUpstreams(bad)
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

// IssuerFor is the issuer of a server listening on addr (HOST:PORT) when
// none is configured: http://localhost:PORT for a loopback or unspecified
// host (the URL a browser on this machine uses), else http://HOST:PORT.
func IssuerFor(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	ip := net.ParseIP(host)
	if host == "" || host == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Options turns storage.etcd into etcd.Options (without the password, read
// at open) and reports every invalid field.
func (e *Etcd) Options() (etcd.Options, []error) {
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

// FollowListener makes an issuer that was made from http.addr follow the
// address the server actually bound (http.addr with port 0 binds a free
// port); a configured issuer is left alone.
func (c *Config) FollowListener(bound string) {
	if c.Issuer != c.Parsed.derivedIssuer {
		c.Parsed.IssuerFromAddr = false // set since Validate made it
	}
	if !c.Parsed.IssuerFromAddr {
		return
	}
	if iss := IssuerFor(bound); iss != "" {
		c.Issuer, c.Parsed.derivedIssuer = iss, iss
	}
}
