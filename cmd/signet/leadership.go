package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/leader"
)

// scheduleLeader decides whether this replica runs the scheduled jobs
// (rotation, purges). On etcd it is an election; on bolt the one process
// is always the leader.
type scheduleLeader interface {
	// Lead returns the context a job runs in (fenced on etcd) and true, or
	// false when another replica leads.
	Lead(ctx context.Context) (context.Context, context.CancelFunc, bool)
	// StepDown ends this replica's term after a fenced write was refused.
	StepDown(reason error)
	Leading() bool
	Close()
}

// soleLeader is the leader of a fleet of one (bolt).
type soleLeader struct{}

func (soleLeader) Lead(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	return ctx, func() {}, true
}
func (soleLeader) StepDown(error) {}
func (soleLeader) Leading() bool  { return true }
func (soleLeader) Close()         {}

// startLeader starts the election of an etcd store, or returns soleLeader,
// and registers the signet_leader gauge.
func startLeader(ctx context.Context, st storage.Store, c *config.Config, reg *prometheus.Registry, log *slog.Logger) scheduleLeader {
	var l scheduleLeader = soleLeader{}
	if es, ok := st.(*etcd.Store); ok {
		ttl, _ := time.ParseDuration(c.Storage.Etcd.LeaderTTL) // validated
		l = leader.Start(ctx, leader.Options{
			Client: es.Client(),
			Prefix: es.Prefix() + "leader/",
			Name:   c.ReplicaName(),
			TTL:    ttl,
			Logger: log.With("component", "leader"),
		})
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signet_leader",
		Help: "1 on the replica that runs the scheduled jobs (rotation, purges), 0 on the others.",
	}, func() float64 {
		if l.Leading() {
			return 1
		}
		return 0
	}))
	return l
}

// rotationDue says whether the scheduled rotation is due now: the stored
// time has come, or none is stored yet (the job then runs on the cron
// spec, as before the first scheduled rotation).
func (m *Main) rotationDue() bool {
	next, now := m.Keys.NextRotation(), m.Now()
	if !next.IsZero() && now.Before(next) {
		return false
	}
	// Already postponed at this due time (a pending key too young, as
	// after a revocation): wait until every pending key has been published
	// long enough, rather than make new keys every rotationRecheck.
	if m.postponed.Load() == next.UnixNano() {
		for _, k := range m.Keys.Current() {
			if k.State == keys.StatePending && now.Before(k.CreatedAt.Add(m.Config.Parsed.JWKSMaxAge)) {
				return false
			}
		}
	}
	return true
}
