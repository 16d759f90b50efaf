package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// target is one system under load: a signet deployment or a bare baseline.
type target struct {
	name  string
	urls  []string
	procs []*proc // whose CPU counts as the server's
	etcd  []*proc // etcd members, counted apart
	dep   *deployment
	c     *http.Client

	// refresh chains, one per worker, and codes issued for redemption
	chains []string
	mu     sync.Mutex
	codes  []string
}

func (t *target) base(i int) string { return t.urls[i%len(t.urls)] }

// putCode keeps an authorization code for a later redemption.
func (t *target) putCode(c string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.codes = append(t.codes, c)
}

// takeCode takes the newest code kept; ok is false when none is left.
func (t *target) takeCode() (c string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.codes) == 0 {
		return "", false
	}
	c = t.codes[len(t.codes)-1]
	t.codes = t.codes[:len(t.codes)-1]
	return c, true
}

// dropCodes forgets the codes kept.
func (t *target) dropCodes() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.codes = nil
}

// workload is one row group: a kind of request and the targets it runs on.
type workload struct {
	name    string
	targets []*target
	// prepare runs before the measured window (not counted).
	prepare func(ctx context.Context, t *target, conc int) error
	op      func(t *target) func(ctx context.Context, w int) error
	// conc caps the connections of this workload's windows (0: -concurrency).
	conc int
}

type benchFlags struct {
	signet      string
	duration    time.Duration
	rounds      int
	concurrency int
	brief       bool
	fleet       bool
	keep        bool
}

// parseBenchFlags parses the flags bench and custody share (and extra's).
func parseBenchFlags(name string, args []string, extra func(fs *flag.FlagSet, f *benchFlags)) (benchFlags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f benchFlags
	fs.StringVar(&f.signet, "signet", "", "signet binary to run (default: go build ./cmd/signet)")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "measured window of each system in each round")
	fs.IntVar(&f.rounds, "rounds", 3, "rounds; the order of the systems alternates between rounds")
	fs.IntVar(&f.concurrency, "concurrency", 16, "connections (closed-loop workers) per window")
	fs.BoolVar(&f.brief, "brief", false, "CI mode: -duration 300ms -rounds 1 -concurrency 4 unless given; every answer must be 200")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory (logs, data)")
	if extra != nil {
		extra(fs, &f)
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.brief {
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		if !set["duration"] {
			f.duration = 300 * time.Millisecond
		}
		if !set["rounds"] {
			f.rounds = 1
		}
		if !set["concurrency"] {
			f.concurrency = 4
		}
	}
	if f.rounds < 1 || f.concurrency < 1 || f.duration <= 0 {
		return f, errors.New("-rounds, -concurrency and -duration must be positive")
	}
	return f, nil
}

func runBench(ctx context.Context, args []string) error {
	f, err := parseBenchFlags("bench", args, func(fs *flag.FlagSet, f *benchFlags) {
		fs.BoolVar(&f.fleet, "fleet", true, "also run three replicas over a three-member etcd")
	})
	if err != nil {
		return err
	}
	cmdline := "signet-load " + strings.Join(args, " ")

	l, err := newLab(ctx, f.signet)
	if err != nil {
		return err
	}
	defer l.close(f.keep)
	started := time.Now()
	ts, err := l.benchTargets(ctx, f)
	if err != nil {
		return err
	}
	wls := benchWorkloads(ts)
	fmt.Fprintf(os.Stderr, "signet-load: set up in %s; %d rounds of %s per system\n", time.Since(started).Round(time.Millisecond), f.rounds, f.duration)

	idle, err := ts.idle(ctx, max(f.duration, time.Second))
	if err != nil {
		return err
	}
	sign := map[string][]time.Duration{}
	in, err := signingInputs(ctx, ts.bolt)
	if err != nil {
		return err
	}
	agg, rates, err := measure(ctx, wls, f, func() {
		for _, alg := range []string{"ES256", "RS256"} {
			sign[alg] = append(sign[alg], bareSign(alg, in[alg], max(f.duration/2, 200*time.Millisecond)))
		}
	})
	if err != nil {
		return err
	}

	// The report.
	out := os.Stdout
	fmt.Fprintf(out, "### signet-load, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "`%s` on %s; %s\n\n", strings.TrimSpace(cmdline), machine(), l.signetVersion(ctx))
	fmt.Fprintf(out, "Loopback, load generator (Go, closed loop, %d connections) and servers sharing the machine; systems alternated per round; server CPU from /proc/PID/stat (utime+stime) of the server processes over the window.\n\n", f.concurrency)
	fmt.Fprintln(out, "| workload | system | req/s (rounds) | p50 | p99 | server CPU/req | × bare echo | etcd CPU/req | errors |")
	fmt.Fprintln(out, "|---|---|---|---:|---:|---:|---:|---:|---:|")
	// The bare echo figure each row is set against: the same JWKS bytes for
	// JWKS, the token-shaped POST with a small JSON answer for the rest.
	bareOf := func(w string) *result {
		if w == wlJWKS {
			return agg[key{wlJWKS, ts.echo.name}]
		}
		return agg[key{wlBare, ts.echo.name}]
	}
	cpuPer := map[key]time.Duration{}
	ratePer := map[key]float64{}
	var failures []string
	for _, wl := range wls {
		for _, t := range wl.targets {
			k := key{wl.name, t.name}
			a := agg[k]
			if a == nil || a.n == 0 {
				failures = append(failures, fmt.Sprintf("%s on %s: no requests", wl.name, t.name))
				continue
			}
			cpuPer[k] = a.cpu / time.Duration(a.n)
			ratePer[k] = float64(a.n) / a.elapsed.Seconds()
			etcdCol := "–"
			if len(t.etcd) > 0 {
				etcdCol = us(a.etcdCPU / time.Duration(a.n))
			}
			times := "–"
			if b := bareOf(wl.name); b != nil && b.n > 0 && b.cpu > 0 {
				times = fmt.Sprintf("%.2f", float64(cpuPer[k])/float64(b.cpu/time.Duration(b.n)))
			}
			fmt.Fprintf(out, "| %s | %s | **%.0f** (%s) | %s | %s | %s | %s | %s | %d |\n", wl.name, t.name, ratePer[k], spread(rates[k]),
				ms(a.lat.quantile(.5)), ms(a.lat.quantile(.99)), us(cpuPer[k]), times, etcdCol, a.errs)
			if a.errs > 0 {
				failures = append(failures, fmt.Sprintf("%s on %s: %d of %d answers wrong, first: %v", wl.name, t.name, a.errs, a.n, a.firstErr))
			}
		}
	}
	fmt.Fprintf(out, "\nIdle CPU of the server processes with no load, included in the figures above: %s.\n\n", idle)
	fmt.Fprintln(out, "| derived | value | target (issue 18) |")
	fmt.Fprintln(out, "|---|---:|---|")
	bareReq := cpuPer[key{wlBare, ts.echo.name}]
	if j, b := cpuPer[key{wlJWKS, ts.bolt.name}], cpuPer[key{wlJWKS, ts.echo.name}]; b > 0 {
		fmt.Fprintf(out, "| JWKS CPU/req, signet ÷ bare echo with the same bytes and headers | %.2f× | ≤ 1.1× |\n", float64(j)/float64(b))
	}
	fmt.Fprintf(out, "| bare HTTP request CPU (echo, small constant JSON, token-shaped POST) | %s | |\n", us(bareReq))
	for _, alg := range []string{"ES256", "RS256"} {
		s := median(sign[alg])
		tok := cpuPer[key{wlCC(alg), ts.bolt.name}]
		fmt.Fprintf(out, "| bare %s signature CPU (in-process, stdlib crypto, median of rounds) | %s | |\n", alg, us(s))
		target := ""
		if alg == "ES256" {
			target = "≤ 15 µs"
		}
		fmt.Fprintf(out, "| **%s extra**: signet CPU/token − bare signature − bare HTTP request | **%s** | %s |\n", alg, us(tok-s-bareReq), target)
	}
	if ts.fleet != nil {
		for _, wl := range wls {
			kb, kf := key{wl.name, ts.bolt.name}, key{wl.name, ts.fleet.name}
			if ratePer[kb] > 0 && ratePer[kf] > 0 {
				fmt.Fprintf(out, "| %s: fleet ÷ bolt req/s; CPU/req (replicas + etcd) | %.2f×; %.2f× | |\n", wl.name, ratePer[kf]/ratePer[kb],
					float64(cpuPer[kf]+agg[kf].etcdCPU/time.Duration(agg[kf].n))/float64(cpuPer[kb]))
			}
		}
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

// Workload names, used in the report's rows and ratios.
const (
	wlJWKS      = "JWKS"
	wlBare      = "small JSON, token-shaped POST"
	wlRefresh   = "refresh (ES256 access + ID token)"
	wlAuthorize = "authorize with SSO session → code"
	wlRedeem    = "code redemption (ES256 access + ID token + refresh token)"
)

func wlCC(alg string) string { return "client_credentials " + alg }

type benchTargets struct {
	bolt, fleet, echo, nethttp *target
}

// benchTargets starts signet on bolt, the two bare baselines (serving the
// JWKS bytes and headers signet serves) and, with -fleet, three replicas
// over three etcd members.
func (l *lab) benchTargets(ctx context.Context, f benchFlags) (benchTargets, error) {
	var ts benchTargets
	d, err := l.deploy(ctx, "bolt", deployOptions{algs: "RS256, ES256"})
	if err != nil {
		return ts, err
	}
	ts.bolt = &target{name: "signet serve (bolt)", urls: d.urls, procs: d.replicas, dep: d, c: httpClient(f.concurrency)}
	a, err := want200(do(ctx, ts.bolt.c, http.MethodGet, d.urls[0]+"/.well-known/jwks.json", nil, "", ""))
	if err != nil {
		return ts, fmt.Errorf("JWKS: %w", err)
	}
	jwksFile, hdrFile := filepath.Join(l.dir, "jwks.json"), filepath.Join(l.dir, "jwks-headers.json")
	hdr := http.Header{}
	for k, v := range a.header {
		if k != "Date" && k != "Content-Length" {
			hdr[k] = v
		}
	}
	hb, _ := json.Marshal(hdr)
	if err := errors.Join(os.WriteFile(jwksFile, a.body, 0o600), os.WriteFile(hdrFile, hb, 0o600)); err != nil {
		return ts, err
	}
	for _, kind := range []string{"echo", "nethttp"} {
		addr, err := freeAddr()
		if err != nil {
			return ts, err
		}
		p := l.add(newProc("baseline "+kind, filepath.Join(l.dir, "baseline-"+kind+".log"), l.self, nil,
			"baseline", "-kind", kind, "-addr", addr, "-jwks", jwksFile, "-jwks-headers", hdrFile))
		if err := p.start(); err != nil {
			return ts, err
		}
		if err := waitOK(ctx, p, "http://"+addr+"/.well-known/jwks.json", 30*time.Second); err != nil {
			return ts, err
		}
		t := &target{urls: []string{"http://" + addr}, procs: []*proc{p}, c: httpClient(f.concurrency)}
		if kind == "echo" {
			t.name, ts.echo = "bare echo", t
		} else {
			t.name, ts.nethttp = "bare net/http", t
		}
	}
	if f.fleet {
		ec, err := l.startEtcd(ctx, 3)
		if err != nil {
			return ts, err
		}
		d, err := l.deploy(ctx, "fleet", deployOptions{replicas: 3, etcd: ec, algs: "RS256, ES256"})
		if err != nil {
			return ts, err
		}
		ts.fleet = &target{name: "fleet: 3 replicas, 3 etcd", urls: d.urls, procs: d.replicas, etcd: ec.members, dep: d, c: httpClient(f.concurrency)}
	}
	return ts, nil
}

// idle measures what each target's processes use with no load (leases,
// watches, timers), over d, all at once.
func (ts benchTargets) idle(ctx context.Context, d time.Duration) (string, error) {
	all := []*target{ts.bolt, ts.fleet, ts.echo, ts.nethttp}
	c0 := map[*target][2]time.Duration{}
	for _, t := range all {
		if t == nil {
			continue
		}
		a, err1 := cpuOf(t.procs)
		b, err2 := cpuOf(t.etcd)
		if err := errors.Join(err1, err2); err != nil {
			return "", err
		}
		c0[t] = [2]time.Duration{a, b}
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(d):
	}
	var parts []string
	for _, t := range all {
		if t == nil {
			continue
		}
		a, err1 := cpuOf(t.procs)
		b, err2 := cpuOf(t.etcd)
		if err := errors.Join(err1, err2); err != nil {
			return "", err
		}
		p := fmt.Sprintf("%s %.1f ms/s", t.name, float64(a-c0[t][0])/1e6/d.Seconds())
		if len(t.etcd) > 0 {
			p += fmt.Sprintf(" (etcd %.1f ms/s)", float64(b-c0[t][1])/1e6/d.Seconds())
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", "), nil
}

// ccWorkload is client_credentials tokens signed with alg on targets.
func ccWorkload(alg string, targets []*target) workload {
	return workload{name: wlCC(alg), targets: targets, op: func(t *target) func(ctx context.Context, w int) error {
		return func(ctx context.Context, w int) error {
			_, err := want200(t.dep.token(ctx, t.c, t.base(w), alg))
			return err
		}
	}}
}

func benchWorkloads(ts benchTargets) []workload {
	signets := []*target{ts.bolt}
	if ts.fleet != nil {
		signets = append(signets, ts.fleet)
	}
	return []workload{
		{name: wlJWKS, targets: append([]*target{ts.echo, ts.nethttp}, signets...), op: func(t *target) func(ctx context.Context, w int) error {
			return func(ctx context.Context, w int) error {
				_, err := want200(do(ctx, t.c, http.MethodGet, t.base(w)+"/.well-known/jwks.json", nil, "", ""))
				return err
			}
		}},
		{name: wlBare, targets: []*target{ts.echo, ts.nethttp}, op: func(t *target) func(ctx context.Context, w int) error {
			return func(ctx context.Context, w int) error {
				_, err := want200(do(ctx, t.c, http.MethodPost, t.base(w)+"/oauth2/token", ccForm, ccClient("ES256"), ts.bolt.dep.secrets[ccClient("ES256")]))
				return err
			}
		}},
		ccWorkload("ES256", signets),
		ccWorkload("RS256", signets),
		{name: wlRefresh, targets: signets,
			prepare: func(ctx context.Context, t *target, conc int) error {
				for len(t.chains) < conc {
					i := len(t.chains)
					rt, err := t.dep.family(ctx, t.c, t.base(i), t.base(i+1))
					if err != nil {
						return err
					}
					t.chains = append(t.chains, rt)
				}
				return nil
			},
			op: func(t *target) func(ctx context.Context, w int) error {
				var mu sync.Mutex
				step := make([]int, len(t.chains))
				return func(ctx context.Context, w int) error {
					mu.Lock()
					rt := t.chains[w]
					step[w]++
					base := t.base(w + step[w]) // a different replica each time on the fleet
					mu.Unlock()
					a, err := want200(t.dep.refresh(ctx, t.c, base, rt))
					if err != nil {
						return err
					}
					next := a.str("refresh_token")
					if next == "" {
						return fmt.Errorf("no refresh token in %s", a.body)
					}
					mu.Lock()
					t.chains[w] = next
					mu.Unlock()
					return nil
				}
			}},
		{name: wlAuthorize, targets: signets, prepare: func(_ context.Context, t *target, _ int) error {
			t.dropCodes() // a code left from the last round may be near its login.code_ttl
			return nil
		}, op: func(t *target) func(ctx context.Context, w int) error {
			return func(ctx context.Context, w int) error {
				c, err := t.dep.code(ctx, t.base(w), "openid read")
				if err != nil {
					return err
				}
				t.putCode(c)
				return nil
			}
		}},
		// Redemption uses the codes the authorize window just issued, each
		// at another replica than the one that issued it on the fleet; the
		// window ends early when they run out.
		{name: wlRedeem, targets: signets, op: func(t *target) func(ctx context.Context, w int) error {
			return func(ctx context.Context, w int) error {
				c, ok := t.takeCode()
				if !ok {
					return errNoWork
				}
				_, err := want200(t.dep.redeem(ctx, t.c, t.base(w+1), c))
				return err
			}
		}},
	}
}

// key names one row: a workload on a target.
type key struct{ w, t string }

// measure runs f.rounds rounds of every workload on each of its targets,
// the order of the targets reversed every other round, and afterRound after
// each; it returns the windows summed per row and each window's rate.
func measure(ctx context.Context, wls []workload, f benchFlags, afterRound func()) (map[key]*result, map[key][]float64, error) {
	agg := map[key]*result{}
	rates := map[key][]float64{}
	for round := range f.rounds {
		for _, wl := range wls {
			order := slices.Clone(wl.targets)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			conc := f.concurrency
			if wl.conc > 0 {
				conc = min(conc, wl.conc)
			}
			for _, t := range order {
				if wl.prepare != nil {
					if err := wl.prepare(ctx, t, conc); err != nil {
						return nil, nil, fmt.Errorf("%s on %s: prepare: %w", wl.name, t.name, err)
					}
				}
				r, err := window(ctx, t, conc, f.duration, wl.op(t))
				if err != nil {
					return nil, nil, err
				}
				k := key{wl.name, t.name}
				if agg[k] == nil {
					agg[k] = &result{}
				}
				a := agg[k]
				a.n, a.errs, a.elapsed, a.cpu, a.etcdCPU = a.n+r.n, a.errs+r.errs, a.elapsed+r.elapsed, a.cpu+r.cpu, a.etcdCPU+r.etcdCPU
				if a.firstErr == nil {
					a.firstErr = r.firstErr
				}
				a.lat.merge(&r.lat)
				rates[k] = append(rates[k], float64(r.n)/r.elapsed.Seconds())
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
			}
		}
		if afterRound != nil {
			afterRound()
		}
	}
	return agg, rates, nil
}

// window measures one closed-loop window on t, with the CPU its processes
// used meanwhile.
func window(ctx context.Context, t *target, conc int, d time.Duration, op func(ctx context.Context, w int) error) (*result, error) {
	c0, err := cpuOf(t.procs)
	if err != nil {
		return nil, err
	}
	e0, err := cpuOf(t.etcd)
	if err != nil {
		return nil, err
	}
	r := closedLoop(ctx, conc, d, op)
	c1, err := cpuOf(t.procs)
	if err != nil {
		return nil, err
	}
	e1, err := cpuOf(t.etcd)
	if err != nil {
		return nil, err
	}
	r.cpu, r.etcdCPU = c1-c0, e1-e0
	return r, nil
}

// signingInputs returns the signing input (header.payload) of a real
// token of each algorithm, for the bare signature measurement.
func signingInputs(ctx context.Context, t *target) (map[string][]byte, error) {
	in := map[string][]byte{}
	for _, alg := range []string{"ES256", "RS256"} {
		a, err := want200(t.dep.token(ctx, t.c, t.base(0), alg))
		if err != nil {
			return nil, err
		}
		tok := a.str("access_token")
		in[alg] = []byte(tok[:max(strings.LastIndexByte(tok, '.'), 0)])
	}
	return in, nil
}

// bareSign is the CPU one signature of input costs in this process
// (SHA-256, the stdlib signature, base64url of it), measured over d.
func bareSign(alg string, input []byte, d time.Duration) time.Duration {
	var sign func() []byte
	switch alg {
	case "ES256":
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		sign = func() []byte {
			h := sha256.Sum256(input)
			r, s, _ := ecdsa.Sign(rand.Reader, k, h[:])
			sig := make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
			return sig
		}
	default:
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		sign = func() []byte {
			h := sha256.Sum256(input)
			sig, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
			return sig
		}
	}
	runtime.GC()
	c0 := selfCPU()
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		_ = base64.RawURLEncoding.EncodeToString(sign())
	}
	return (selfCPU() - c0) / time.Duration(max(n, 1))
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func spread(rs []float64) string {
	if len(rs) == 1 {
		return "1 round"
	}
	return fmt.Sprintf("%.0f–%.0f", slices.Min(rs), slices.Max(rs))
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// machine names the CPU model (as lscpu does), the CPU count, OS and Go.
func machine() string {
	model := "unknown CPU"
	if out, err := exec.Command("lscpu").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s/%s, %s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func (l *lab) signetVersion(ctx context.Context) string {
	out, err := l.signetCmd(ctx, "", "version")
	if err != nil {
		return "signet version unknown"
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return first
}
