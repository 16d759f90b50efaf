package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/signet-auth/signet/datadir"
	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/storeopen"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// preflight is what Open checks and binds before it writes anything, so
// that a start that fails (port in use, missing KEK file, unusable data
// directory) leaves no database, KEK file or keys behind.
type preflight struct {
	publicLn, adminLn, metricsLn net.Listener
	// What existed before this start; Open removes what it made on error.
	dirExisted, dbExisted, kekExisted bool
}

// Open starts everything: store, keys, HTTP, cron. It binds the listeners
// and checks the data directory and the KEK before the first write, and on
// error it closes what it opened and removes the files it created. Calling
// Close after an error is harmless.
func (m *Main) Open(ctx context.Context) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	m.Logger = m.startLog()
	err := m.preflight(ctx)
	if err == nil {
		err = m.open(ctx)
	}
	if err == nil {
		_ = m.logBuf.Flush() // the startup lines, at once
		return nil
	}
	held := m.Store != nil // this start held the database lock
	m.Close()
	for _, ln := range []net.Listener{m.pre.publicLn, m.pre.adminLn, m.pre.metricsLn} {
		if ln != nil {
			ln.Close() // already closed when serving had started
		}
	}
	m.removeCreated(held)
	var le *storeopen.LockedError
	if errors.As(err, &le) {
		le.Serve = true
	}
	return err
}

func (m *Main) preflight(ctx context.Context) error {
	c := &m.Config
	for _, w := range c.Parsed.EnvWarnings {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, w)
	}
	_, err := os.Stat(c.DataDir)
	m.pre.dirExisted = err == nil
	_, err = os.Stat(c.BoltPath())
	m.pre.dbExisted = err == nil
	_, err = os.Stat(c.KEKPath())
	m.pre.kekExisted = err == nil
	if err := datadir.Check(filepath.Dir(c.BoltPath())); err != nil {
		return err
	}
	if m.pre.publicLn, err = net.Listen("tcp", c.HTTP.Addr); err != nil {
		return fmt.Errorf("http.addr %s: %w", c.HTTP.Addr, err)
	}
	c.FollowListener(m.pre.publicLn.Addr().String())
	m.warnIssuer(ctx)
	if c.HTTP.AdminAddr != "" {
		if m.pre.adminLn, err = net.Listen("tcp", c.HTTP.AdminAddr); err != nil {
			return fmt.Errorf("http.admin_addr %s: %w", c.HTTP.AdminAddr, err)
		}
	}
	if metricsOn(c.HTTP) == metricsOwn {
		if m.pre.metricsLn, err = net.Listen("tcp", c.HTTP.MetricsAddr); err != nil {
			return fmt.Errorf("http.metrics_addr %s: %w", c.HTTP.MetricsAddr, err)
		}
	}
	// The KEK is read again (and, on a first run, created) once the store
	// is open; here only what can be refused without writing.
	if _, err := keksource.Read(c, m.Getenv); err != nil {
		return err
	}
	return nil
}

// removeCreated removes the database, KEK file and data directory that a
// failed start made. The database and KEK only when this start held the
// database lock: otherwise they belong to the process that holds it.
func (m *Main) removeCreated(held bool) {
	c := &m.Config
	if held && !m.pre.kekExisted {
		os.Remove(c.KEKPath())
	}
	if held && !m.pre.dbExisted {
		os.Remove(c.BoltPath())
	}
	if !m.pre.dirExisted {
		os.Remove(c.DataDir) // only if empty
	}
}

// serveOn serves h on a listener bound by preflight.
func serveOn(ln net.Listener, h http.Handler, errorLog *log.Logger) *listener {
	l := &listener{ln: ln, served: make(chan error, 1), srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}}
	go func() { l.served <- l.srv.Serve(ln) }()
	return l
}

// warnIssuer says where the issuer came from when none was configured, and
// warns when the issuer cannot be the URL verifiers reach: a localhost URL
// on a listener other hosts can reach, or (without a proxy in
// http.trusted_proxies) a configured URL whose host or port is not
// http.addr's.
func (m *Main) warnIssuer(ctx context.Context) {
	c := &m.Config
	attrs := []slog.Attr{slog.String("issuer", c.Issuer), slog.String("addr", c.HTTP.Addr)}
	if w := issuerWarning(c.Issuer, c.HTTP.Addr, len(c.HTTP.TrustedProxies) > 0, c.Parsed.IssuerFromAddr); w != "" {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, w, attrs...)
	} else if c.Parsed.IssuerFromAddr {
		m.Logger.LogAttrs(ctx, slog.LevelInfo, "no issuer configured: it follows http.addr (set the public URL with --issuer or SIGNET_ISSUER)", attrs...)
	}
}

// issuerWarning returns the warning for issuer on a listener at addr, or
// "". fromAddr says the issuer was made from addr, not configured.
func issuerWarning(issuer, addr string, proxied, fromAddr bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	ihost := u.Hostname()
	iip := net.ParseIP(ihost)
	iloopback := ihost == "localhost" || (iip != nil && iip.IsLoopback())
	if iloopback && !loopback {
		what := "the issuer " + issuer
		if fromAddr {
			what = "no issuer is configured, so it is " + issuer + ", made from http.addr,"
		}
		return fmt.Sprintf("%s names this machine but http.addr %s accepts connections from other hosts, "+
			"which cannot reach it at that URL: set the public URL with --issuer or SIGNET_ISSUER", what, addr)
	}
	if fromAddr || proxied || port == "0" {
		return ""
	}
	iport := u.Port()
	if iport == "" {
		iport = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	anyHost := host == "" || (ip != nil && ip.IsUnspecified())
	sameHost := anyHost || ihost == host || (loopback && iloopback)
	if iport == port && sameHost {
		return ""
	}
	return fmt.Sprintf("the issuer %s is not http.addr %s and no proxy is configured (http.trusted_proxies is empty): "+
		"if verifiers reach signet at another URL, set it with --issuer or SIGNET_ISSUER (or leave the issuer unset to follow http.addr); "+
		"if a proxy forwards to signet, list it in http.trusted_proxies",
		issuer, addr)
}
