// Package metrics is Signet's Prometheus instrumentation: the key set, the
// token endpoint (authority.TokenMetrics), HTTP requests by route template,
// and the purge job. Labels are bounded by construction: route templates,
// grant types, algorithms, error codes, never a client id or a URL.
package metrics

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
)

// Build names the running build in signet_build_info.
type Build struct{ Version, Commit, GoVersion string }

// Register puts Signet's collectors on reg and returns the JWKS request
// counter for CountRequests. nextRotation tells when the rotation job runs
// next (zero if not scheduled).
func Register(reg *prometheus.Registry, km *keys.Manager, bi Build, nextRotation, now func() time.Time) prometheus.Counter {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "signet_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "goversion": bi.GoVersion},
	}, func() float64 { return 1 }))
	reg.MustRegister(keyCollector{
		km:        km,
		now:       now,
		keys:      prometheus.NewDesc("signet_keys", "Keys by state and algorithm.", []string{"state", "alg"}, nil),
		age:       prometheus.NewDesc("signet_active_key_age_seconds", "Seconds since the active key of an algorithm started signing.", []string{"alg"}, nil),
		rotations: prometheus.NewDesc("signet_key_rotations_total", "Keys this process made active, by algorithm and reason (schedule, manual, revoke).", []string{"alg", "reason"}, nil),
	})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signet_next_rotation_timestamp_seconds",
		Help: "Unix time of the next scheduled rotation (keys.rotation.schedule in keys.rotation.timezone).",
	}, func() float64 {
		if t := nextRotation(); !t.IsZero() {
			return float64(t.Unix())
		}
		return 0
	}))
	jwksRequests := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signet_jwks_requests_total",
		Help: "Requests to /.well-known/jwks.json.",
	})
	reg.MustRegister(jwksRequests)
	return jwksRequests
}

// CountRequests counts requests to h without wrapping the ResponseWriter, so
// it adds no allocation to the JWKS path.
func CountRequests(h http.Handler, c prometheus.Counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.Inc()
		h.ServeHTTP(w, r)
	})
}

// keyCollector reports the key set from the manager's in-memory snapshot at
// scrape time.
type keyCollector struct {
	km                   *keys.Manager
	now                  func() time.Time
	keys, age, rotations *prometheus.Desc
}

func (c keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keys
	ch <- c.age
	ch <- c.rotations
}

func (c keyCollector) Collect(ch chan<- prometheus.Metric) {
	type stateAlg struct{ state, alg string }
	counts := map[stateAlg]int{}
	for _, alg := range c.km.Algorithms() {
		for _, s := range []keys.State{keys.StatePending, keys.StateActive, keys.StateRetired, keys.StateRevoked} {
			counts[stateAlg{string(s), alg}] = 0
		}
	}
	now := c.now()
	for _, k := range c.km.Current() {
		counts[stateAlg{string(k.State), k.Alg}]++
		if k.State == keys.StateActive {
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(k.ActivatedAt).Seconds(), k.Alg)
		}
	}
	for sa, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(n), sa.state, sa.alg)
	}
	for _, r := range c.km.RotationCounts() {
		ch <- prometheus.MustNewConstMetric(c.rotations, prometheus.CounterValue, float64(r.N), r.Alg, string(r.Reason))
	}
}

// Tokens implements authority.TokenMetrics with Prometheus. Client
// ids are left out of the labels on purpose: the registry can hold any
// number of clients, and per-client series would grow without bound.
type Tokens struct {
	issued  *prometheus.CounterVec
	admin   *prometheus.CounterVec
	failed  *prometheus.CounterVec
	latency prometheus.Histogram
}

// NewTokens registers the token endpoint metrics on reg.
func NewTokens(reg *prometheus.Registry) *Tokens {
	m := &Tokens{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tokens_issued_total",
			Help: "Access tokens issued, by grant type and signing algorithm.",
		}, []string{"grant", "alg"}),
		admin: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_admin_tokens_issued_total",
			Help: "Admin API tokens issued (audience signet-admin: the CLI's --server exchanges), by signing algorithm; not in signet_tokens_issued_total.",
		}, []string{"alg"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_token_errors_total",
			Help: "Refused token requests, by OAuth error code.",
		}, []string{"error"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_token_request_duration_seconds",
			Help:    "Token endpoint latency, successes and failures.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
	}
	reg.MustRegister(m.issued, m.admin, m.failed, m.latency)
	return m
}

func (m *Tokens) Issued(grant, alg, _ string) { m.issued.WithLabelValues(grant, alg).Inc() }
func (m *Tokens) IssuedAdmin(alg string)      { m.admin.WithLabelValues(alg).Inc() }
func (m *Tokens) Failed(code string)          { m.failed.WithLabelValues(code).Inc() }
func (m *Tokens) Observe(d time.Duration)     { m.latency.Observe(d.Seconds()) }

// HTTP counts the requests that reach echo by route template
// (echo's c.Path(), such as /admin/clients/:id: never an id from the URL,
// so the series stay bounded whatever clients send) and status class.
// Requests that match no route share the route "unmatched". The JWKS is
// served before echo and counted by signet_jwks_requests_total alone, so
// its hot path pays nothing here.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the HTTP request metrics on reg.
func NewHTTP(reg *prometheus.Registry) *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_http_requests_total",
			Help: "HTTP requests by route template and status class (2xx, 3xx, 4xx, 5xx); the JWKS is in signet_jwks_requests_total.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signet_http_request_duration_seconds",
			Help:    "HTTP request latency by route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	reg.MustRegister(h.requests, h.duration)
	return h
}

// Middleware observes one request. A handler's error is answered here
// (c.Error), so that its status is known; the server's error handler then
// leaves the committed response alone when the error reaches it again.
func (h *HTTP) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		h.requests.WithLabelValues(route, statusClass(c.Response().Status)).Inc()
		h.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		return err
	}
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return statusClasses[code/100-1] // constants: no string built per request
}

// Purges are what the purge job did, by kind of record (keys, audit,
// browser_sessions, login_transactions, authorization_codes,
// refresh_sessions, denylist). Every replica registers them; only the
// leader's move.
type Purges struct {
	deleted, failures *prometheus.CounterVec
	oldest            *prometheus.GaugeVec
}

// NewPurges registers the purge job metrics on reg.
func NewPurges(reg *prometheus.Registry) *Purges {
	p := &Purges{
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_purge_deleted_total",
			Help: "Expired records the purge job deleted, by kind.",
		}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_purge_failures_total",
			Help: "Purge runs that failed (and are retried at the next run), by kind.",
		}, []string{"kind"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "signet_purge_oldest_expired_seconds",
			Help: "When the last purge run read the store, how long ago the oldest expired record had expired, by kind; 0 when there was none. It stays below the period of keys.purge.schedule while the purge keeps up.",
		}, []string{"kind"}),
	}
	reg.MustRegister(p.deleted, p.failures, p.oldest)
	return p
}

// Observe records one run's report.
func (p *Purges) Observe(r storage.Purged, now time.Time) {
	p.deleted.WithLabelValues(r.Kind).Add(float64(r.Deleted))
	if r.Err != nil {
		p.failures.WithLabelValues(r.Kind).Inc()
		if r.Oldest.IsZero() {
			return // the run could not read: the last known age stands
		}
	} else {
		p.failures.WithLabelValues(r.Kind) // present at 0
	}
	age := 0.0
	if !r.Oldest.IsZero() {
		age = max(0, now.Sub(r.Oldest).Seconds())
	}
	p.oldest.WithLabelValues(r.Kind).Set(age)
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
