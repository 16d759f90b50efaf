package authority

import (
	"context"
	"errors"
	"fmt"

	"github.com/signet-auth/signet/clients"
)

// Demo client settings for `signet serve --dev`.
const (
	DemoClientID = "demo"
	DemoScope    = "demo:read"
	DemoAudience = "demo-api"
)

// EnsureDemoClient creates the demo client (client_credentials, scope
// demo:read, audience demo-api) when the registry is empty, and returns its
// credentials. On a store that already has clients it creates nothing and
// returns created=false: a stored secret cannot be shown again.
func EnsureDemoClient(ctx context.Context, reg *clients.Registry) (id, secret string, created bool, err error) {
	_, secret, err = reg.CreateFirst(ctx, clients.Client{
		ID:         DemoClientID,
		GrantTypes: []string{clients.GrantClientCredentials},
		Scopes:     []string{DemoScope},
		Audiences:  []string{DemoAudience},
	})
	if errors.Is(err, clients.ErrNotEmpty) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("demo client: %w", err)
	}
	return DemoClientID, secret, true, nil
}
