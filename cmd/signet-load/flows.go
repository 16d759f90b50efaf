package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// flowLab is one `signet serve` on bolt set up for every flow scenario:
// open dynamic registration, client ID metadata documents served by the
// tool itself over loopback https, a federated issuer whose key the tool
// holds, and the clients each scenario needs.
type flowLab struct {
	*lab
	d     *deployment
	f     benchFlags
	users int
	docs  *docServer
	fed   *fedIssuer
	c     *http.Client

	benches map[key]string // the handler benchmark behind each row
	notes   []string       // printed under the table
	checks  []func() error // invariants checked after the run
}

// flowScenario is one group of rows, selected with -only NAME.
type flowScenario struct {
	name  string
	setup func(ctx context.Context, fl *flowLab) ([]workload, error)
}

var flowScenarios = []flowScenario{
	{"register", registerScenario},
	{"cimd", cimdScenario},
	{"login", loginScenario},
	{"grants", grantsScenario},
}

// flowScope is the scope of the dynamic clients and of every token here.
const flowScope = "read"

// runFlows measures flows beyond the token endpoint's hot path through one
// `signet serve` on bolt over loopback: dynamic client registration, code
// redemption by a metadata-document client beside a registered one, the
// login page and a TOTP sign-in, token exchange and the jwt-bearer grant
// beside client_credentials.
func runFlows(ctx context.Context, args []string) error {
	var only string
	var users int
	f, err := parseBenchFlags("flows", args, func(fs *flag.FlagSet, _ *benchFlags) {
		fs.StringVar(&only, "only", "", "comma-separated scenarios to run: register, cimd, login, grants (default all)")
		fs.IntVar(&users, "users", 0, "users with an authenticator app for the TOTP rows, each signing in once per round (default 100; 8 with -brief)")
	})
	if err != nil {
		return err
	}
	if users == 0 {
		users = map[bool]int{false: 100, true: 8}[f.brief]
	}
	if users < 1 {
		return fmt.Errorf("-users %d: want at least 1", users)
	}
	picked, err := pickScenarios(only)
	if err != nil {
		return err
	}
	cmdline := "signet-load flows " + strings.Join(args, " ")
	loadBefore := loadAvg()

	l, err := newLab(ctx, f.signet)
	if err != nil {
		return err
	}
	defer l.close(f.keep)
	started := time.Now()
	fl := &flowLab{lab: l, f: f, users: users, c: httpClient(f.concurrency), benches: map[key]string{}}
	if fl.docs, err = startDocServer(l.dir); err != nil {
		return err
	}
	defer fl.docs.srv.Close()
	if fl.fed, err = newFedIssuer(filepath.Join(l.dir, "fed-jwks.json")); err != nil {
		return err
	}
	// ES256 only: dynamic clients sign with the server's default algorithm,
	// so every token of every row here is ES256.
	fl.d, err = l.deploy(ctx, "flows", deployOptions{algs: "ES256", extra: fl.config(), populate: fl.populate})
	if err != nil {
		return err
	}
	var wls []workload
	for _, s := range picked {
		w, err := s.setup(ctx, fl)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		wls = append(wls, w...)
	}
	fmt.Fprintf(os.Stderr, "signet-load: set up in %s; %d rounds of %s per row\n", time.Since(started).Round(time.Millisecond), f.rounds, f.duration)
	fetches0 := fl.docs.fetches.Load()
	agg, rates, err := measure(ctx, wls, f, nil)
	if err != nil {
		return err
	}
	timedFetches := fl.docs.fetches.Load() - fetches0

	out := os.Stdout
	fmt.Fprintf(out, "### signet-load flows, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "`%s` on %s; %s; load average (1, 5, 15 min) %s before, %s after\n\n", strings.TrimSpace(cmdline), machine(), l.signetVersion(ctx), loadBefore, loadAvg())
	fmt.Fprintf(out, "Loopback, one `signet serve` on bolt (ES256 keys), load generator (closed loop, %d connections) on the same machine; the rows of a workload alternated per round (A, B, then B, A); server CPU from /proc/PID/stat.\n\n", f.concurrency)
	fmt.Fprintln(out, "| workload | client / grant | req/s (rounds) | answers | p50 | p99 | server CPU/req | errors | handler benchmark |")
	fmt.Fprintln(out, "|---|---|---|---:|---:|---:|---:|---:|---|")
	var failures []string
	for _, wl := range wls {
		for _, t := range wl.targets {
			k := key{wl.name, t.name}
			a := agg[k]
			if a == nil || a.n == 0 {
				failures = append(failures, fmt.Sprintf("%s, %s: no requests", wl.name, t.name))
				continue
			}
			fmt.Fprintf(out, "| %s | %s | **%.0f** (%s) | %d | %s | %s | %s | %d | %s |\n", wl.name, t.name, float64(a.n)/a.elapsed.Seconds(), spread(rates[k]), a.n,
				ms(a.lat.quantile(.5)), ms(a.lat.quantile(.99)), us(a.cpu/time.Duration(a.n)), a.errs, fl.benches[k])
			if a.errs > 0 {
				failures = append(failures, fmt.Sprintf("%s, %s: %d of %d answers wrong, first: %v", wl.name, t.name, a.errs, a.n, a.firstErr))
			}
		}
	}
	fmt.Fprintln(out)
	// The rows of a workload ran back to back in each round, so their
	// ratio per round is steadier than the rates on a shared machine.
	for _, wl := range wls {
		for _, t := range wl.targets[min(1, len(wl.targets)):] {
			base, rs := rates[key{wl.name, wl.targets[0].name}], rates[key{wl.name, t.name}]
			var ratios []string
			var rf []float64
			for i := range min(len(base), len(rs)) {
				rf = append(rf, rs[i]/max(base[i], 1e-9))
				ratios = append(ratios, fmt.Sprintf("%.2f", rf[i]))
			}
			fmt.Fprintf(out, "- %s: %s ÷ %s, req/s per round: %s (median %.2f)\n", wl.name, t.name, wl.targets[0].name,
				strings.Join(ratios, ", "), medianFloat(rf))
		}
	}
	if slices.ContainsFunc(picked, func(s flowScenario) bool { return s.name == "cimd" }) {
		fmt.Fprintf(out, "- Metadata document fetches during the measured rounds: **%d** (%d in all, during set-up).\n", timedFetches, fl.docs.fetches.Load()-timedFetches)
		if timedFetches != 0 {
			failures = append(failures, fmt.Sprintf("the metadata document was fetched %d times during the measured rounds: the cache should have answered", timedFetches))
		}
	}
	for _, n := range fl.notes {
		fmt.Fprintln(out, "-", n)
	}
	for _, check := range fl.checks {
		if err := check(); err != nil {
			failures = append(failures, err.Error())
		}
	}
	if len(failures) > 0 {
		fmt.Fprintln(out)
		for _, s := range failures {
			fmt.Fprintln(out, "FAIL:", s)
		}
		return fmt.Errorf("%d flow checks failed", len(failures))
	}
	return nil
}

// pickScenarios returns the scenarios -only names, in their order; all
// of them for "".
func pickScenarios(only string) ([]flowScenario, error) {
	if only == "" {
		return flowScenarios, nil
	}
	names := strings.Split(only, ",")
	for _, n := range names {
		if !slices.ContainsFunc(flowScenarios, func(s flowScenario) bool { return s.name == n }) {
			return nil, fmt.Errorf("-only: no scenario %q (register, cimd, login, grants)", n)
		}
	}
	var picked []flowScenario
	for _, s := range flowScenarios {
		if slices.Contains(names, s.name) {
			picked = append(picked, s)
		}
	}
	return picked, nil
}

// config is the YAML the flows need beyond deploy's: open registration
// without the per-address limit or the cap (the tool registers from one
// address as fast as it can), metadata documents with the tool's test CA
// trusted (a loopback issuer lets the fetcher dial loopback), and the
// federated issuer by its key file.
func (fl *flowLab) config() string {
	return fmt.Sprintf(`outbound:
  ca_file: %s
dynamic_clients:
  registration:
    enabled: true
    per_ip: -1
    max_clients: -1
  metadata_documents:
    enabled: true
  grant_types: [authorization_code]
  auth_methods: [none]
  scopes: [%s]
  audiences: [%s]
federation:
  issuers:
    - issuer: %s
      jwks_file: %s
      algorithms: [ES256]
`, fl.docs.caFile, flowScope, flowAudience, fedIssuerName, fl.fed.jwksFile)
}

// flowAudience is the audience of the dynamic clients' tokens.
const flowAudience = "https://api.load.test/"

// populate makes the flows' clients offline, before the server starts.
func (fl *flowLab) populate(ctx context.Context, d *deployment, cfg string) error {
	s, err := fl.createClient(ctx, cfg, "--id", adminClient, "--grant", "client_credentials", "--scope", "signet:admin", "--audience", "signet-admin")
	if err != nil {
		return err
	}
	d.secrets[adminClient] = s
	if s, err = fl.createClient(ctx, cfg, "--id", exchangeClient, "--grant", "password", "--grant", grantTokenExchange,
		"--scope", flowScope, "--audience", exchangeClient, "--exchange-audience", exchangeTarget, "--alg", "ES256"); err != nil {
		return err
	}
	d.secrets[exchangeClient] = s
	// A federated client has no secret: create prints only its id.
	_, err = fl.signetCmd(ctx, "", "clients", "create", "--config", cfg, "--json", "--id", workloadClient, "--grant", grantJWTBearer,
		"--scope", flowScope, "--audience", audience, "--alg", "ES256", "--federated", fedIssuerName+"="+fedSubject)
	return err
}

// target is a row of the flows' server: every row runs on the same one.
func (fl *flowLab) target(name string) *target {
	return &target{name: name, urls: fl.d.urls, procs: fl.d.replicas, dep: fl.d, c: fl.c}
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// medianFloat is the median of fs (the mean of the middle two of an even count).
func medianFloat(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := slices.Clone(fs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
