package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-auth/signet/backchannel"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/metrics"
	"github.com/signet-auth/signet/outbound"
)

// startBackchannel runs the back-channel logout worker until root ends: it
// delivers the outbox on the replica that leads the scheduled jobs, with
// the hardened outbound fetcher and the ID token signing path.
func (m *Main) startBackchannel(root context.Context, reg *prometheus.Registry, fetcher *outbound.Fetcher, log *slog.Logger) {
	cfg := backchannel.Config{
		Store:    m.Store,
		Clients:  m.Server.Clients(),
		Sign:     m.Server.SignLogoutToken,
		Fetcher:  fetcher,
		Issuer:   m.Config.Issuer,
		Lead:     m.leader.Lead,
		StepDown: m.leader.StepDown,
		Metrics:  metrics.NewBackchannel(reg),
		Logger:   log.With("component", "backchannel"),
		Now:      m.Now,
	}
	if m.backchannelTuning != nil {
		m.backchannelTuning(&cfg) // tests: short back-off
	}
	m.backchannelDone = make(chan struct{})
	go func() {
		defer close(m.backchannelDone)
		backchannel.Run(root, cfg)
	}()
}

// backchannelFlags registers the back-channel logout flags of signet
// clients create and update.
func backchannelFlags(fs *flag.FlagSet, spec *clients.Client) {
	fs.StringVar(&spec.BackchannelLogoutURI, "backchannel-logout-uri", "", "back-channel logout: where logout tokens are POSTed when a session ends (https, or http on loopback; \"\" removes it)")
	fs.BoolVar(&spec.BackchannelLogoutSessionRequired, "backchannel-logout-session-required", false, "back-channel logout: the client requires sid in logout tokens (Signet always sends it)")
}
