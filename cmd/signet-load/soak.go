package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage/etcd"
)

// The soak's traffic kinds.
const (
	kToken      = "client_credentials token"
	kRefresh    = "refresh"
	kAuthorize  = "authorize (SSO → code)"
	kRedeem     = "code redemption"
	kIntrospect = "introspection"
	kJWKS       = "JWKS"
	kRevoke     = "revocation"
)

var soakKinds = []string{kToken, kRefresh, kAuthorize, kRedeem, kIntrospect, kJWKS, kRevoke}

type soakFlags struct {
	signet                               string
	minutes                              float64
	tokens, refreshes, codes, introspect float64
	jwksRate, revocations                float64
	keep                                 bool
	purge                                string // keys.purge.schedule
}

// kindStats counts the answers of one kind of request.
type kindStats struct {
	sent, ok, s503, s5xx, s4xx, unreachable atomic.Int64
	lat                                     hist
	first5xx, first4xx                      atomic.Pointer[string]
}

// soak is one soak run's state.
type soak struct {
	d     *deployment
	c     *http.Client
	start time.Time
	stats map[string]*kindStats

	verifiers []*jwks.Verifier
	verifyQ   chan string

	// must be zero
	validRejected, forgedAccepted, doubleSpends, revocationsLost atomic.Int64
	liveInactive, unexpected4xx                                  atomic.Int64
	// informative
	verified, forgedChecked, races, replays, refreshAmbiguous   atomic.Int64
	refreshRefusedClean, revocationsChecked, revocationsUnknown atomic.Int64
	families, behind                                            atomic.Int64
	revokeLat                                                   hist
	firstRejection                                              atomic.Pointer[string]

	mu     sync.Mutex
	spent  map[[16]byte]int // refresh tokens answered 200, by hash
	recent []string         // live access tokens, for introspection
	events []string         // the chaos actually done
}

func runSoak(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var f soakFlags
	fs.StringVar(&f.signet, "signet", "", "signet binary to run (default: go build ./cmd/signet)")
	fs.Float64Var(&f.minutes, "minutes", 10, "length of the run; the chaos stops 30 s before the end")
	fs.Float64Var(&f.tokens, "tokens", 200, "client_credentials tokens per second")
	fs.Float64Var(&f.refreshes, "refreshes", 40, "refreshes per second")
	fs.Float64Var(&f.codes, "codes", 10, "authorization codes issued and redeemed per second")
	fs.Float64Var(&f.introspect, "introspections", 20, "introspections per second")
	fs.Float64Var(&f.jwksRate, "jwks", 20, "JWKS fetches per second")
	fs.Float64Var(&f.revocations, "revocations", 2, "revoke-then-introspect checks per second")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory (logs, data)")
	fs.StringVar(&f.purge, "purge", "@every 1m", "keys.purge.schedule of the replicas: shorter than the time between kills, so that purges run under load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	total := time.Duration(f.minutes * float64(time.Minute))
	if total < time.Minute {
		return fmt.Errorf("-minutes %v: at least 1", f.minutes)
	}
	cmdline := "signet-load soak " + strings.Join(args, " ")
	l, err := newLab(ctx, f.signet)
	if err != nil {
		return err
	}
	defer l.close(f.keep)
	ec, err := l.startEtcd(ctx, 3)
	if err != nil {
		return err
	}
	// A 20 s rotation (jwks.max_age 5 s), so that keys rotate all through
	// the run and across every leader change.
	d, err := l.deploy(ctx, "soak", deployOptions{replicas: 3, etcd: ec, algs: "RS256, ES256", rotation: "@every 20s", maxAge: "5s", purge: f.purge})
	if err != nil {
		return err
	}
	s := &soak{d: d, c: httpClient(64), stats: map[string]*kindStats{}, verifyQ: make(chan string, 4096), spent: map[[16]byte]int{}}
	for _, k := range soakKinds {
		s.stats[k] = &kindStats{}
	}
	// Three verifiers, as three services would run them: each with its
	// own cache, fetching through a load balancer over the replicas.
	lb := &http.Client{Timeout: 5 * time.Second, Transport: &lbTransport{urls: d.urls, rt: s.c.Transport}}
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	for range 3 {
		v, err := jwks.NewVerifier(vctx, d.issuer, jwks.WithAudience(audience), jwks.WithHTTPClient(lb),
			jwks.WithJWKSURL(d.issuer+"/.well-known/jwks.json"), jwks.WithMinRefreshInterval(200*time.Millisecond))
		if err != nil {
			return fmt.Errorf("verifier: %w", err)
		}
		defer v.Close()
		s.verifiers = append(s.verifiers, v)
	}
	etcdc, err := clientv3.New(clientv3.Config{Endpoints: ec.clients, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer etcdc.Close()

	fmt.Fprintf(os.Stderr, "signet-load: soak of %s on %v\n", total, d.urls)
	s.start = time.Now()
	tctx, tcancel := context.WithDeadline(ctx, s.start.Add(total))
	defer tcancel()
	var wg sync.WaitGroup
	var vwg sync.WaitGroup
	for range 2 {
		vwg.Add(1)
		go func() { defer vwg.Done(); s.verifyLoop(vctx) }()
	}
	chains := make(chan *chain, 16)
	for i := range 8 {
		rt, err := d.family(ctx, s.c, d.urls[i%3], d.urls[(i+1)%3])
		if err != nil {
			return fmt.Errorf("refresh family: %w", err)
		}
		chains <- &chain{rt: rt}
	}
	s.paced(tctx, ctx, &wg, f.tokens, 64, func(ctx context.Context) { s.token(ctx) })
	s.paced(tctx, ctx, &wg, f.refreshes, 16, func(ctx context.Context) { s.refreshStep(ctx, chains) })
	s.paced(tctx, ctx, &wg, f.codes, 16, func(ctx context.Context) { s.codeFlow(ctx) })
	s.paced(tctx, ctx, &wg, f.introspect, 16, func(ctx context.Context) { s.introspectOne(ctx) })
	s.paced(tctx, ctx, &wg, f.jwksRate, 16, func(ctx context.Context) {
		s.try(ctx, kJWKS, func(base string) (answer, error) {
			return do(ctx, s.c, http.MethodGet, base+"/.well-known/jwks.json", nil, "", "")
		})
	})
	s.paced(tctx, ctx, &wg, f.revocations, 8, func(ctx context.Context) { s.revocationCheck(ctx) })
	chaosDone := make(chan struct{})
	go func() { defer close(chaosDone); s.chaos(tctx, total, ec, etcdc) }()
	wg.Wait()
	<-chaosDone
	elapsed := time.Since(s.start)
	// Every replica and member must be back, ready.
	for i := range ec.members {
		if !ec.members[i].running() {
			_ = ec.restart(i)
		}
		if err := waitOK(ctx, ec.members[i], ec.clients[i]+"/health", 60*time.Second); err != nil {
			s.event("end: etcd e%d not healthy: %v", i, err)
		}
	}
	ready := 0
	for i := range d.replicas {
		if !d.replicas[i].running() {
			_ = d.replicas[i].start()
		}
		if waitOK(ctx, d.replicas[i], d.urls[i]+"/readyz", 60*time.Second) == nil {
			ready++
		}
	}
	close(s.verifyQ)
	vwg.Wait()
	facts := s.storeFacts(ctx, ec, etcdc)
	return s.report(cmdline, l, total, elapsed, ready, facts)
}

// rotationPeriod is the soak's keys.rotation.schedule.
const rotationPeriod = 20 * time.Second

// storeFacts reads, after the run, when the ES256 keys were activated
// (the rotation schedule across leader changes) and how many records each
// bucket holds (storage that only grows shows here).
func (s *soak) storeFacts(ctx context.Context, ec *etcdCluster, etcdc *clientv3.Client) []string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var facts []string
	st, err := etcd.Open(ctx, etcd.Options{Endpoints: ec.clients, Prefix: "signet/"})
	if err != nil {
		return []string{"store not readable after the run: " + err.Error()}
	}
	defer st.Close()
	infos, err := keys.List(ctx, st)
	if err != nil {
		facts = append(facts, "keys not readable after the run: "+err.Error())
	}
	var acts []time.Time
	for _, k := range infos {
		if k.Alg == "ES256" && !k.ActivatedAt.IsZero() && k.ActivatedAt.After(s.start) {
			acts = append(acts, k.ActivatedAt)
		}
	}
	slices.SortFunc(acts, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	late := 0
	prev := s.start
	for _, a := range acts {
		g := a.Sub(prev)
		longest = max(longest, g)
		if g > rotationPeriod*3/2 {
			late++
		}
		prev = a
	}
	facts = append(facts, fmt.Sprintf("rotations (ES256 activations): %d in the run, %d due at one per %s; longest gap %s; gaps over 1.5 periods: %d",
		len(acts), int(time.Since(s.start)/rotationPeriod), rotationPeriod, longest.Round(100*time.Millisecond), late))
	resp, err := etcdc.Get(ctx, "signet/b/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return append(facts, "etcd records not countable: "+err.Error())
	}
	per := map[string]int{}
	for _, kv := range resp.Kvs {
		b, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), "signet/b/"), "/")
		per[b]++
	}
	var names []string
	for b := range per {
		names = append(names, fmt.Sprintf("%s %d", b, per[b]))
	}
	sort.Strings(names)
	return append(facts, "etcd records by bucket at the end: "+strings.Join(names, ", "))
}

// paced calls fn rate times a second until stop is done, at most inflight
// at once; ticks that find inflight calls running are skipped and
// counted. The calls run on ctx, so that the end of the run lets the
// requests in flight finish (a request cut at the end would show in the
// servers' logs as an error the run made).
func (s *soak) paced(stop, ctx context.Context, wg *sync.WaitGroup, rate float64, inflight int, fn func(ctx context.Context)) {
	if rate <= 0 {
		return
	}
	sem := make(chan struct{}, inflight)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		for {
			select {
			case <-stop.Done():
				for range inflight { // wait for the calls in flight
					sem <- struct{}{}
				}
				return
			case <-t.C:
			}
			select {
			case sem <- struct{}{}:
				go func() { defer func() { <-sem }(); fn(ctx) }()
			default:
				s.behind.Add(1)
			}
		}
	}()
}

// record classifies one answer of kind k from base.
func (s *soak) record(k, base string, a answer, err error, d time.Duration) {
	st := s.stats[k]
	st.sent.Add(1)
	if err != nil {
		st.unreachable.Add(1)
		return
	}
	st.lat.add(d)
	switch {
	case a.status == http.StatusOK || (k == kAuthorize && a.status/100 == 3):
		st.ok.Add(1)
	case a.status == http.StatusServiceUnavailable:
		st.s503.Add(1)
	case a.status >= 500:
		st.s5xx.Add(1)
		msg := fmt.Sprintf("t=%s %s %d %.200s", s.since(), base, a.status, strings.Join(strings.Fields(string(a.body)), " "))
		st.first5xx.CompareAndSwap(nil, &msg)
	default:
		st.s4xx.Add(1)
		msg := fmt.Sprintf("t=%s %s %d %.200s", s.since(), base, a.status, strings.Join(strings.Fields(string(a.body)), " "))
		st.first4xx.CompareAndSwap(nil, &msg)
	}
}

func (s *soak) since() string { return time.Since(s.start).Round(100 * time.Millisecond).String() }

// try sends a request to a random replica, and on a transport error (a
// killed replica) to the others in turn, as a client behind a load
// balancer would. Only for requests safe to repeat.
func (s *soak) try(ctx context.Context, k string, fn func(base string) (answer, error)) (answer, string, error) {
	first := rand.IntN(len(s.d.urls))
	var a answer
	var err error
	var base string
	for i := range len(s.d.urls) {
		base = s.d.urls[(first+i)%len(s.d.urls)]
		t0 := time.Now()
		a, err = fn(base)
		if ctx.Err() != nil {
			return a, base, ctx.Err()
		}
		s.record(k, base, a, err, time.Since(t0))
		if err == nil {
			return a, base, nil
		}
	}
	return a, base, err
}

func (s *soak) token(ctx context.Context) {
	a, _, err := s.try(ctx, kToken, func(base string) (answer, error) { return s.d.token(ctx, s.c, base, "ES256") })
	if err != nil || a.status != http.StatusOK {
		s.unexpected(kToken, a, err)
		return
	}
	tok := a.str("access_token")
	s.mu.Lock()
	if len(s.recent) >= 256 {
		s.recent = s.recent[1:]
	}
	s.recent = append(s.recent, tok)
	s.mu.Unlock()
	s.queueVerify(tok)
}

// unexpected counts a 4xx where only 200 (or a 503 refusal) is right.
func (s *soak) unexpected(k string, a answer, err error) {
	if err == nil && a.status/100 == 4 {
		s.unexpected4xx.Add(1)
	}
}

func (s *soak) queueVerify(tok string) {
	if tok == "" {
		return
	}
	select {
	case s.verifyQ <- tok:
	default:
		s.verify(context.Background(), tok) // the queue is full: verify here, slowing the sender
	}
}

func (s *soak) verifyLoop(ctx context.Context) {
	for tok := range s.verifyQ {
		s.verify(ctx, tok)
	}
}

// verify checks tok with every verifier (a rejection is a valid token
// rejected), and one token in 50 tampered with (an acceptance is a forgery
// accepted).
func (s *soak) verify(ctx context.Context, tok string) {
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for i, v := range s.verifiers {
		if _, err := v.Verify(vctx, tok); err != nil {
			s.validRejected.Add(1)
			msg := fmt.Sprintf("t=%s verifier %d: %v", s.since(), i, err)
			s.firstRejection.CompareAndSwap(nil, &msg)
		}
	}
	if n := s.verified.Add(1); n%50 == 0 {
		s.forgedChecked.Add(1)
		if _, err := s.verifiers[n%3].Verify(vctx, tamper(tok)); err == nil {
			s.forgedAccepted.Add(1)
		}
	}
}

// tamper changes one character in the middle of the payload.
func tamper(tok string) string {
	d1 := strings.IndexByte(tok, '.')
	d2 := strings.LastIndexByte(tok, '.')
	i := (d1 + d2) / 2
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// chain is one refresh token family in use.
type chain struct {
	rt string
	// tainted: raced, replayed, or cut by a crash or a 5xx, so that its
	// family may rightly be revoked (reuse detection).
	tainted bool
}

// spend notes that rt was answered 200; a second time is a double spend.
func (s *soak) spend(rt string) {
	h := sha256.Sum256([]byte(rt))
	var k [16]byte
	copy(k[:], h[:])
	s.mu.Lock()
	s.spent[k]++
	twice := s.spent[k] == 2
	s.mu.Unlock()
	if twice {
		s.doubleSpends.Add(1)
		s.event("DOUBLE SPEND of a refresh token")
	}
}

func (s *soak) refreshOnce(ctx context.Context, base, rt string) (answer, error) {
	t0 := time.Now()
	a, err := s.d.refresh(ctx, s.c, base, rt)
	if ctx.Err() == nil {
		s.record(kRefresh, base, a, err, time.Since(t0))
	}
	if err == nil && a.status == http.StatusOK {
		s.spend(rt)
	}
	return a, err
}

// refreshStep takes a chain, refreshes it at a random replica, and one
// step in 80 races the same token at two replicas, one in 80 replays the
// used token at another replica. A refused chain is replaced by a new
// family (a new login's code, redeemed).
func (s *soak) refreshStep(ctx context.Context, chains chan *chain) {
	var ch *chain
	select {
	case ch = <-chains:
	default:
		s.behind.Add(1)
		return
	}
	put := func(c *chain) {
		if c == nil {
			c = s.newFamily(ctx)
		}
		if c != nil {
			chains <- c
		}
	}
	n := rand.IntN(80)
	i := rand.IntN(3)
	a, b := s.d.urls[i], s.d.urls[(i+1+rand.IntN(2))%3]
	if n == 0 { // race
		s.races.Add(1)
		var wg sync.WaitGroup
		ans := make([]answer, 2)
		for j, base := range []string{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); ans[j], _ = s.refreshOnce(ctx, base, ch.rt) }()
		}
		wg.Wait()
		for _, x := range ans {
			if x.status == http.StatusOK {
				put(&chain{rt: x.str("refresh_token"), tainted: true})
				return
			}
		}
		put(nil)
		return
	}
	ans, err := s.refreshOnce(ctx, a, ch.rt)
	switch {
	case ctx.Err() != nil:
		chains <- ch
	case err != nil: // a crash mid-request: maybe committed; try the same token elsewhere
		ans, err = s.refreshOnce(ctx, b, ch.rt)
		if err == nil && ans.status == http.StatusOK {
			put(&chain{rt: ans.str("refresh_token"), tainted: true})
			return
		}
		s.refreshAmbiguous.Add(1)
		put(nil)
	case ans.status == http.StatusOK:
		next := &chain{rt: ans.str("refresh_token"), tainted: ch.tainted}
		if n == 1 { // replay the used token at another replica
			s.replays.Add(1)
			_, _ = s.refreshOnce(ctx, b, ch.rt)
			next.tainted = true
		}
		put(next)
	case ans.status == http.StatusServiceUnavailable:
		chains <- ch // refused on purpose: retry later
	case ans.status >= 500:
		ch.tainted = true // may have committed
		chains <- ch
	default:
		if !ch.tainted {
			s.refreshRefusedClean.Add(1)
		}
		put(nil)
	}
}

// newFamily starts a refresh family: authorize at one replica, redeem at
// another; nil when that fails (the caller's chain is then gone, and the
// pool one smaller until the next success).
func (s *soak) newFamily(ctx context.Context) *chain {
	for range 20 {
		if ctx.Err() != nil {
			return nil
		}
		if rt, ok := s.codeAndRedeem(ctx, "openid offline_access read"); ok {
			s.families.Add(1)
			return &chain{rt: rt}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil
}

func (s *soak) codeFlow(ctx context.Context) { s.codeAndRedeem(ctx, "openid read") }

// codeAndRedeem gets a code at one replica and redeems it at another; it
// returns the refresh token (if any) and whether it worked.
func (s *soak) codeAndRedeem(ctx context.Context, scope string) (string, bool) {
	var code string
	a, base, err := s.try(ctx, kAuthorize, func(base string) (answer, error) {
		return do(ctx, s.d.browser, http.MethodGet, s.d.authorizeURL(base, scope), nil, "", "")
	})
	if err != nil || a.status == http.StatusServiceUnavailable || a.status >= 500 {
		return "", false
	}
	if code, err = codeOf(a); err != nil {
		s.unexpected4xx.Add(1) // an answer, but no code: the SSO session was lost
		s.event("authorize at %s gave no code: %v", base, err)
		return "", false
	}
	other := s.d.urls[(slices.Index(s.d.urls, base)+1+rand.IntN(2))%3]
	t0 := time.Now()
	a, err = s.d.redeem(ctx, s.c, other, code)
	if ctx.Err() != nil {
		return "", false
	}
	s.record(kRedeem, other, a, err, time.Since(t0))
	if err != nil || a.status != http.StatusOK {
		s.unexpected(kRedeem, a, err)
		return "", false
	}
	s.queueVerify(a.str("access_token"))
	return a.str("refresh_token"), true
}

func (s *soak) introspectOne(ctx context.Context) {
	s.mu.Lock()
	if len(s.recent) == 0 {
		s.mu.Unlock()
		return
	}
	tok := s.recent[rand.IntN(len(s.recent))]
	s.mu.Unlock()
	a, _, err := s.try(ctx, kIntrospect, func(base string) (answer, error) { return s.introspect(ctx, base, tok) })
	if err != nil || a.status != http.StatusOK {
		s.unexpected(kIntrospect, a, err)
		return
	}
	if active, _ := a.json()["active"].(bool); !active {
		s.liveInactive.Add(1)
		s.event("a live token was introspected inactive")
	}
}

func (s *soak) introspect(ctx context.Context, base, tok string) (answer, error) {
	return do(ctx, s.c, http.MethodPost, base+"/oauth2/introspect", url.Values{"token": {tok}}, ccClient("ES256"), s.d.secrets[ccClient("ES256")])
}

// revocationCheck gets a token at replica A, revokes it there and asks
// another running replica until it says inactive: still active after 1 s
// is a revocation lost.
func (s *soak) revocationCheck(ctx context.Context) {
	a, base, err := s.try(ctx, kToken, func(base string) (answer, error) { return s.d.token(ctx, s.c, base, "ES256") })
	if err != nil || a.status != http.StatusOK {
		s.unexpected(kToken, a, err)
		return
	}
	tok := a.str("access_token")
	s.queueVerify(tok)
	t0 := time.Now()
	r, err := do(ctx, s.c, http.MethodPost, base+"/oauth2/revoke", url.Values{"token": {tok}}, ccClient("ES256"), s.d.secrets[ccClient("ES256")])
	if ctx.Err() != nil {
		return
	}
	s.record(kRevoke, base, r, err, time.Since(t0))
	if err != nil || r.status != http.StatusOK {
		s.unexpected(kRevoke, r, err)
		return
	}
	revoked := time.Now()
	var others []string
	for i, u := range s.d.urls {
		if u != base && s.d.replicas[i].running() {
			others = append(others, u)
		}
	}
	if len(others) == 0 {
		s.revocationsUnknown.Add(1)
		return
	}
	other := others[rand.IntN(len(others))]
	sawActive := false
	for time.Since(revoked) < time.Second {
		t1 := time.Now()
		x, err := s.introspect(ctx, other, tok)
		if ctx.Err() != nil {
			return
		}
		s.record(kIntrospect, other, x, err, time.Since(t1))
		if err == nil && x.status == http.StatusOK {
			if active, _ := x.json()["active"].(bool); !active {
				s.revocationsChecked.Add(1)
				s.revokeLat.add(time.Since(revoked))
				return
			}
			sawActive = true
		}
		time.Sleep(25 * time.Millisecond)
	}
	if sawActive {
		s.revocationsChecked.Add(1)
		s.revocationsLost.Add(1)
		s.event("revocation at %s still active at %s after 1 s", base, other)
		return
	}
	s.revocationsUnknown.Add(1) // the other replica refused or was gone the whole second
}

func (s *soak) event(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) < 200 {
		s.events = append(s.events, fmt.Sprintf("%s: %s", s.since(), fmt.Sprintf(format, args...)))
	}
}

// chaos runs the schedule: a replica SIGKILLed every minute and restarted
// (the leader every other time), an etcd member SIGKILLed every two
// minutes for 15 s, and quorum lost once for 20 s (two members killed) at
// half time; nothing in the last 30 s.
func (s *soak) chaos(ctx context.Context, total time.Duration, ec *etcdCluster, etcdc *clientv3.Client) {
	type ev struct {
		at time.Duration
		do func()
	}
	var evs []ev
	calm := total - 30*time.Second
	quorumAt := total/2 + 5*time.Second
	var bg sync.WaitGroup
	defer bg.Wait()
	for k := 1; time.Duration(k)*time.Minute <= calm; k++ {
		leader := k%2 == 1
		evs = append(evs, ev{time.Duration(k) * time.Minute, func() {
			i, who := rand.IntN(3), "a follower"
			if li := s.leaderIndex(ctx, etcdc); leader && li >= 0 {
				i, who = li, "the leader"
			} else if li >= 0 && i == li {
				i = (i + 1) % 3
			}
			s.event("SIGKILL replica r%d (%s)", i, who)
			s.d.replicas[i].kill()
			bg.Add(1)
			go func() {
				defer bg.Done()
				time.Sleep(time.Second)
				t0 := time.Now()
				if err := s.d.replicas[i].start(); err != nil {
					s.event("restart r%d: %v", i, err)
					return
				}
				err := waitOK(context.Background(), s.d.replicas[i], s.d.urls[i]+"/readyz", 90*time.Second)
				s.event("replica r%d restarted, ready after %s (err %v)", i, time.Since(t0).Round(10*time.Millisecond), err)
			}()
		}})
	}
	down := func(members []int, d time.Duration) func() {
		return func() {
			for _, m := range members {
				ec.members[m].kill()
			}
			s.event("SIGKILL etcd members %v for %s", members, d)
			time.Sleep(d)
			for _, m := range members {
				if err := ec.restart(m); err != nil {
					s.event("restart etcd e%d: %v", m, err)
				}
			}
			for _, m := range members {
				err := waitOK(context.Background(), ec.members[m], ec.clients[m]+"/health", 60*time.Second)
				s.event("etcd e%d back (err %v)", m, err)
			}
		}
	}
	for k := 0; ; k++ {
		at := 30*time.Second + time.Duration(k)*2*time.Minute
		if at+15*time.Second > calm {
			break
		}
		if at+15*time.Second > quorumAt-10*time.Second && at < quorumAt+30*time.Second {
			continue
		}
		evs = append(evs, ev{at, func() { bg.Add(1); go func() { defer bg.Done(); down([]int{k % 3}, 15*time.Second)() }() }})
	}
	if quorumAt+20*time.Second <= calm {
		evs = append(evs, ev{quorumAt, func() {
			bg.Add(1)
			go func() { defer bg.Done(); s.event("quorum loss"); down([]int{1, 2}, 20*time.Second)() }()
		}})
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	for _, e := range evs {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(s.start.Add(e.at))):
		}
		e.do()
	}
}

// leaderIndex is the replica that holds the leader election, or -1.
func (s *soak) leaderIndex(ctx context.Context, etcdc *clientv3.Client) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := etcdc.Get(ctx, "signet/leader/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return -1
	}
	var i int
	if _, err := fmt.Sscanf(string(resp.Kvs[0].Value), "r%d", &i); err != nil || i < 0 || i > 2 {
		return -1
	}
	return i
}

// idRE matches the record ids in store errors, so that lines differing
// only in the record group together.
var idRE = regexp.MustCompile(`([/=])[A-Za-z0-9_-]{16,}`)

// logErrors counts the ERROR lines of the replicas' logs: all of them,
// those for refusals Signet makes on purpose, and the commonest messages.
func logErrors(d *deployment) (total, deliberate int, top []string) {
	deliberateMarks := []string{"retry on another replica", "lost its store", "stale", "draining", "temporarily", "too many", "not ready"}
	counts := map[string]int{}
	for _, p := range d.replicas {
		f, err := os.Open(p.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct{ Level, Msg, Err string }
			if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Level != "ERROR" {
				continue
			}
			total++
			text := idRE.ReplaceAllString(rec.Msg+": "+rec.Err, "$1…")
			for _, m := range deliberateMarks {
				if strings.Contains(text, m) {
					deliberate++
					break
				}
			}
			if len(text) > 160 {
				text = text[:160]
			}
			counts[text]++
		}
		f.Close()
	}
	for t := range counts {
		top = append(top, t)
	}
	sort.Slice(top, func(i, j int) bool { return counts[top[i]] > counts[top[j]] })
	if len(top) > 8 {
		top = top[:8]
	}
	for i, t := range top {
		top[i] = fmt.Sprintf("%d× %s", counts[t], t)
	}
	return total, deliberate, top
}

func (s *soak) report(cmdline string, l *lab, total, elapsed time.Duration, ready int, facts []string) error {
	out := os.Stdout
	fmt.Fprintf(out, "### signet-load soak, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "`%s` on %s; %s\n\n", strings.TrimSpace(cmdline), machine(), l.signetVersion(context.Background()))
	fmt.Fprintf(out, "Three `signet serve` replicas over a three-member etcd (embedded, one process each, fsync on), keys rotating every 20 s (jwks.max_age 5 s), loopback, %s.\n\n", elapsed.Round(time.Second))
	fmt.Fprintln(out, "Chaos, as done (a replica SIGKILLed every minute, the leader every other time, and restarted after 1 s; an etcd member SIGKILLed for 15 s every two minutes from 0:30; quorum lost for 20 s at half time; none in the last 30 s):")
	fmt.Fprintln(out)
	s.mu.Lock()
	if len(s.events) == 0 {
		fmt.Fprintln(out, "- none (the run is too short for the schedule)")
	}
	for _, e := range s.events {
		fmt.Fprintln(out, "-", e)
	}
	s.mu.Unlock()
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| request | sent | 200 | 503 | other 5xx | 4xx | unreachable | req/s | p50 | p99 |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var all hist
	var sent int64
	var notes []string
	for _, k := range soakKinds {
		st := s.stats[k]
		all.merge(&st.lat)
		sent += st.sent.Load()
		fmt.Fprintf(out, "| %s | %d | %d | %d | %d | %d | %d | %.1f | %s | %s |\n", k, st.sent.Load(), st.ok.Load(), st.s503.Load(), st.s5xx.Load(),
			st.s4xx.Load(), st.unreachable.Load(), float64(st.sent.Load())/elapsed.Seconds(), ms(st.lat.quantile(.5)), ms(st.lat.quantile(.99)))
		if p := st.first5xx.Load(); p != nil {
			notes = append(notes, "first 5xx, "+k+": "+*p)
		}
		if p := st.first4xx.Load(); p != nil {
			notes = append(notes, "first 4xx, "+k+": "+*p)
		}
	}
	fmt.Fprintf(out, "| **all** | %d | | | | | | **%.1f** | %s | %s |\n\n", sent, float64(sent)/elapsed.Seconds(), ms(all.quantile(.5)), ms(all.quantile(.99)))

	var s5xx int64
	for _, st := range s.stats {
		s5xx += st.s5xx.Load()
	}
	errTotal, errDeliberate, top := logErrors(s.d)
	type count struct {
		name  string
		v     int64
		must0 bool
	}
	counts := []count{
		{"valid tokens rejected by a verifier (3 verifiers, every token)", s.validRejected.Load(), true},
		{"tampered tokens accepted", s.forgedAccepted.Load(), true},
		{"refresh tokens answered 200 twice (races + replays + crash retries)", s.doubleSpends.Load(), true},
		{"revocations lost (still active at another replica after 1 s)", s.revocationsLost.Load(), true},
		{"5xx answers other than 503", s5xx, true},
		{"unexpected 4xx (not a refresh after reuse)", s.unexpected4xx.Load(), true},
		{"live tokens introspected inactive", s.liveInactive.Load(), true},
		{"ERROR log lines for deliberate refusals", int64(errDeliberate), true},
		{"replicas not ready at the end", int64(len(s.d.replicas) - ready), true},
		{"tokens verified", s.verified.Load(), false},
		{"tampered tokens checked", s.forgedChecked.Load(), false},
		{"two-replica refresh races", s.races.Load(), false},
		{"refresh replays", s.replays.Load(), false},
		{"refresh cut by a crash, outcome unknown", s.refreshAmbiguous.Load(), false},
		{"refresh refused on a chain never raced, replayed or cut", s.refreshRefusedClean.Load(), false},
		{"new refresh families (logins)", s.families.Load(), false},
		{"revocations checked across replicas", s.revocationsChecked.Load(), false},
		{"revocations not checkable (other replica refusing or gone)", s.revocationsUnknown.Load(), false},
		{"ERROR log lines, all", int64(errTotal), false},
		{"requests skipped (too many in flight)", s.behind.Load(), false},
	}
	fmt.Fprintln(out, "| count | value | must be zero |")
	fmt.Fprintln(out, "|---|---:|---|")
	var bad []string
	for _, c := range counts {
		m := ""
		if c.must0 {
			m = "yes"
			if c.v != 0 {
				m = "**NO**"
				bad = append(bad, c.name)
			}
		}
		fmt.Fprintf(out, "| %s | %d | %s |\n", c.name, c.v, m)
	}
	fmt.Fprintf(out, "\nRevoked token first introspected inactive at another replica: p50 %s, p99 %s.\n", ms(s.revokeLat.quantile(.5)), ms(s.revokeLat.quantile(.99)))
	fmt.Fprintln(out)
	for _, f := range facts {
		fmt.Fprintln(out, "-", f)
	}
	if p := s.firstRejection.Load(); p != nil {
		notes = append(notes, "first rejection: "+*p)
	}
	for _, t := range top {
		notes = append(notes, "ERROR lines: "+t)
	}
	if len(notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintln(out, "-", n)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("soak: must-be-zero counts not zero: %s", strings.Join(bad, "; "))
	}
	return nil
}

// lbTransport sends each request to the next replica, and to the others
// on a transport error or a 5xx: a load balancer in front of the fleet,
// for the verifiers' JWKS fetches (GET only).
type lbTransport struct {
	urls []string
	next atomic.Uint64
	rt   http.RoundTripper
}

func (t *lbTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := t.next.Add(1)
	var resp *http.Response
	var err error
	for i := range len(t.urls) {
		u, _ := url.Parse(t.urls[(int(n)+i)%len(t.urls)])
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
		resp, err = t.rt.RoundTrip(r)
		if err == nil && resp.StatusCode < 500 {
			return resp, nil
		}
		if err == nil && i < len(t.urls)-1 {
			resp.Body.Close()
		}
	}
	return resp, err
}
