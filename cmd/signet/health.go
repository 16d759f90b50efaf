package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// runHealth is `signet health`: GET /readyz on a running server, exit status
// 0 when it answers 200 and 1 otherwise. It is the Docker HEALTHCHECK of the
// scratch image, which has no shell or curl. Without --server it asks the
// address this configuration listens on (http.addr, SIGNET_ADDR, --addr),
// over loopback when that is a wildcard address.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", stderr)
	var cf configFlags
	cf.register(fs)
	server := fs.String("server", "", "base URL of the server to check (default: http://ADDR from the configuration)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *timeout <= 0 {
		return usageError{fmt.Sprintf("--timeout %s: must be positive, such as 3s", *timeout)}
	}
	base := *server
	if base == "" {
		c, err := cf.load(fs)
		if err != nil {
			return err
		}
		base = "http://" + loopbackFor(c.HTTP.Addr)
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/readyz")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("--server %q: expected a URL such as http://127.0.0.1:8080", base)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: not ready: status %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: ready\n", u)
	return nil
}

// loopbackFor turns a listen address into one to dial: a wildcard or empty
// host becomes 127.0.0.1 (or ::1 for [::]).
func loopbackFor(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
