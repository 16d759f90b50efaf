package clients_test

import (
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// TestRegistry_ExchangeAudiences: token_exchange_audiences is required with
// the token exchange grant and only there; its values are audiences.
func TestRegistry_ExchangeAudiences(t *testing.T) {
	reg := clients.New(newStore(t), clients.Options{Algorithms: []string{"ES256"}})
	ex := []string{clients.GrantTokenExchange}
	for _, tc := range []struct {
		name  string
		grant []string
		auds  []string
		want  string // "" when valid
	}{
		{"grant without audiences", ex, nil, "token_exchange_audiences: the " + clients.GrantTokenExchange + " grant needs at least one audience"},
		{"audiences without the grant", nil, []string{"b"}, "token_exchange_audiences: is only used with the grant type"},
		{"duplicate", ex, []string{"b", "b"}, "token_exchange_audiences: duplicate value"},
		{"space", ex, []string{"service b"}, "token_exchange_audiences: 'service b' must be 1 to 256 printable characters"},
		{"valid", ex, []string{"service-b", "https://b.example/api"}, ""},
	} {
		_, _, err := reg.Create(t.Context(), clients.Client{ID: "c-" + strings.ReplaceAll(tc.name, " ", "-"), GrantTypes: tc.grant, Audiences: []string{"api"}, ExchangeAudiences: tc.auds})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
