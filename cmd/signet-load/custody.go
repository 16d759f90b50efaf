package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// softhsmModule is where Debian's softhsm2 package puts the PKCS#11 library.
const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

// runCustody measures client_credentials tokens through two `signet serve`
// on bolt, one with its keys sealed in the store and one with its RS256 and
// ES256 keys generated in a fresh SoftHSM2 token (issue 22), with bench's
// rounds, alternation and server CPU per request.
func runCustody(ctx context.Context, args []string) error {
	f, err := parseBenchFlags("custody", args, nil)
	if err != nil {
		return err
	}
	cmdline := "signet-load custody " + strings.Join(args, " ")
	l, err := newLab(ctx, f.signet)
	if err != nil {
		return err
	}
	defer l.close(f.keep)
	started := time.Now()
	const algs = "RS256, ES256"
	store, err := l.deploy(ctx, "store", deployOptions{algs: algs})
	if err != nil {
		return err
	}
	env, tokenDir, err := l.softhsmToken(ctx, "signet-load")
	if err != nil {
		return err
	}
	hsm, err := l.deploy(ctx, "pkcs11", deployOptions{algs: algs, env: env,
		custody: fmt.Sprintf("    pkcs11:\n      algorithms: [%s]\n      module: %s\n      token_label: signet-load\n", algs, softhsmModule)})
	if err != nil {
		return err
	}
	// The keys must really be in the token: SoftHSM2 keeps one file per object.
	objs, _ := filepath.Glob(filepath.Join(tokenDir, "*", "*.object"))
	if len(objs) < 2 {
		return fmt.Errorf("pkcs11: the token holds %d objects, want the RS256 and ES256 keys (see %s)", len(objs), hsm.replicas[0].log)
	}
	ts := []*target{
		{name: "in store", urls: store.urls, procs: store.replicas, dep: store, c: httpClient(f.concurrency)},
		{name: "PKCS#11 (SoftHSM2)", urls: hsm.urls, procs: hsm.replicas, dep: hsm, c: httpClient(f.concurrency)},
	}
	wls := []workload{ccWorkload("RS256", ts), ccWorkload("ES256", ts)}
	fmt.Fprintf(os.Stderr, "signet-load: set up in %s (token: %d objects); %d rounds of %s per system\n",
		time.Since(started).Round(time.Millisecond), len(objs), f.rounds, f.duration)
	agg, rates, err := measure(ctx, wls, f, nil)
	if err != nil {
		return err
	}

	out := os.Stdout
	fmt.Fprintf(out, "### signet-load custody, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "`%s` on %s; %s\n\n", strings.TrimSpace(cmdline), machine(), l.signetVersion(ctx))
	fmt.Fprintf(out, "Loopback, one `signet serve` on bolt per custody, load generator (closed loop, %d connections) on the same machine; systems alternated per round; server CPU from /proc/PID/stat.\n\n", f.concurrency)
	fmt.Fprintln(out, "| workload | keys | tokens/s (rounds) | p50 | p99 | server CPU/token | errors |")
	fmt.Fprintln(out, "|---|---|---|---:|---:|---:|---:|")
	var failures []string
	for _, wl := range wls {
		for _, t := range wl.targets {
			a := agg[key{wl.name, t.name}]
			if a == nil || a.n == 0 {
				failures = append(failures, fmt.Sprintf("%s on %s: no requests", wl.name, t.name))
				continue
			}
			fmt.Fprintf(out, "| %s | %s | **%.0f** (%s) | %s | %s | %s | %d |\n", wl.name, t.name, float64(a.n)/a.elapsed.Seconds(),
				spread(rates[key{wl.name, t.name}]), ms(a.lat.quantile(.5)), ms(a.lat.quantile(.99)), us(a.cpu/time.Duration(a.n)), a.errs)
			if a.errs > 0 {
				failures = append(failures, fmt.Sprintf("%s on %s: %d of %d answers not 200, first: %v", wl.name, t.name, a.errs, a.n, a.firstErr))
			}
		}
	}
	fmt.Fprintln(out, "\n| PKCS#11 ÷ in store | tokens/s | p50 | p99 | server CPU/token |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|")
	for _, wl := range wls {
		s, h := agg[key{wl.name, ts[0].name}], agg[key{wl.name, ts[1].name}]
		if s == nil || h == nil || s.n == 0 || h.n == 0 {
			continue
		}
		ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2f×", float64(a)/float64(max(b, 1))) }
		fmt.Fprintf(out, "| %s | %.2f× | %s | %s | %s |\n", wl.name,
			(float64(h.n)/h.elapsed.Seconds())/(float64(s.n)/s.elapsed.Seconds()),
			ratio(h.lat.quantile(.5), s.lat.quantile(.5)), ratio(h.lat.quantile(.99), s.lat.quantile(.99)),
			ratio(h.cpu/time.Duration(h.n), s.cpu/time.Duration(s.n)))
	}
	if len(failures) > 0 {
		fmt.Fprintln(out)
		for _, s := range failures {
			fmt.Fprintln(out, "FAIL:", s)
		}
		return fmt.Errorf("%d workloads had wrong answers", len(failures))
	}
	return nil
}

// softhsmToken initialises a SoftHSM2 token labelled label under a private
// SOFTHSM2_CONF in the lab's directory (as keys/custody/pkcs11/softhsmtest
// does for tests) and returns the environment a signet needs to open it
// and the token directory.
func (l *lab) softhsmToken(ctx context.Context, label string) (env []string, tokenDir string, err error) {
	if _, err := os.Stat(softhsmModule); err != nil {
		return nil, "", fmt.Errorf("SoftHSM2 is not installed (apt-get install softhsm2): %w", err)
	}
	dir := filepath.Join(l.dir, "softhsm")
	tokenDir = filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokenDir, 0o700); err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokenDir+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return nil, "", err
	}
	const pin = "1234"
	env = []string{"SOFTHSM2_CONF=" + conf, "SIGNET_PKCS11_PIN=" + pin}
	cmd := exec.CommandContext(ctx, "softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5678")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("softhsm2-util --init-token: %w: %s", err, out)
	}
	return env, tokenDir, nil
}
