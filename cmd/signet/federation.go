package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/federation"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
)

// federationFor builds the trusted issuers of the federation: section:
// their tokens authenticate clients (client_assertion) and serve the
// jwt-bearer grant. Without issuers both are nil, and the grant is
// neither served nor advertised.
func federationFor(c *config.Config, f *outbound.Fetcher, st storage.Store, now func() time.Time, log *slog.Logger) (clientauth.Federation, map[string]authority.Grant, error) {
	issuers := c.FederationIssuers()
	if len(issuers) == 0 {
		return nil, nil, nil
	}
	fed, err := federation.New(federation.Config{Issuers: issuers, Signet: c.Issuer, Fetcher: f, Store: st, Now: now,
		Logger: log.With("component", "federation")})
	if err != nil {
		return nil, nil, fmt.Errorf("federation: %w", err)
	}
	log.Info("federated workload identity", "trusted_issuers", fed.Issuers())
	return fed, map[string]authority.Grant{clients.GrantJWTBearer: fed}, nil
}
