package metrics

import "github.com/prometheus/client_golang/prometheus"

// Backchannel instruments back-channel logout delivery (package
// backchannel; it satisfies backchannel.Metrics). The worker runs on the
// leader, so the pending gauge is that replica's last reading of the
// outbox; the counters add up across replicas.
type Backchannel struct {
	pending               prometheus.Gauge
	sent, failed, givenUp prometheus.Counter
}

// NewBackchannel registers the signet_backchannel_logout_* metrics.
func NewBackchannel(reg *prometheus.Registry) *Backchannel {
	b := &Backchannel{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_backchannel_logout_pending",
			Help: "Logout tokens waiting in the outbox (to send or to retry) at the leader's last pass.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_backchannel_logout_sent_total",
			Help: "Logout tokens a relying party answered with 2xx.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_backchannel_logout_failed_total",
			Help: "Delivery attempts that failed (refused address, timeout, non-2xx); each is retried with back-off.",
		}),
		givenUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_backchannel_logout_given_up_total",
			Help: "Logout tokens dropped undelivered after the give-up age.",
		}),
	}
	reg.MustRegister(b.pending, b.sent, b.failed, b.givenUp)
	return b
}

// Pending sets the outbox size.
func (b *Backchannel) Pending(n int) { b.pending.Set(float64(n)) }

// Sent counts a delivered token.
func (b *Backchannel) Sent() { b.sent.Inc() }

// Failed counts a failed attempt.
func (b *Backchannel) Failed() { b.failed.Inc() }

// GaveUp counts a dropped token.
func (b *Backchannel) GaveUp() { b.givenUp.Inc() }
