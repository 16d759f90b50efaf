package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

const wlRegister = "dynamic client registration (RFC 7591, public client)"

// registerScenario is POST /oauth2/register of a public client, the
// metadata an MCP client sends, as fast as the connections allow.
func registerScenario(_ context.Context, fl *flowLab) ([]workload, error) {
	t := fl.target("open registration, per_ip and max_clients -1")
	fl.benches[key{wlRegister, t.name}] = "registration `BenchmarkRegister`"
	fl.notes = append(fl.notes, "Registration: `dynamic_clients.registration.per_ip: -1` and `max_clients: -1`, so that one source address may register without limit; the defaults (10 per address per hour, 1000 clients) would refuse this load after 10 registrations.")
	body := dynamicClientMetadata("")
	return []workload{{name: wlRegister, targets: []*target{t}, op: func(t *target) func(ctx context.Context, w int) error {
		return func(ctx context.Context, w int) error {
			_, err := register(ctx, t.c, t.base(w), body)
			return err
		}
	}}}, nil
}

// dynamicClientMetadata is a public client's metadata, as a registration
// body (clientID "") or as a client ID metadata document.
func dynamicClientMetadata(clientID string) []byte {
	m := map[string]any{"client_name": "signet-load", "redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code"},
		"response_types": []string{"code"}, "token_endpoint_auth_method": "none", "scope": flowScope}
	if clientID != "" {
		m["client_id"] = clientID
	}
	b, _ := json.Marshal(m)
	return b
}

// register registers a client at base and returns its client_id.
func register(ctx context.Context, c *http.Client, base string, body []byte) (string, error) {
	a, err := postJSON(ctx, c, base+"/oauth2/register", body, "")
	if err != nil {
		return "", err
	}
	if id := a.str("client_id"); a.status == http.StatusCreated && id != "" {
		return id, nil
	}
	return "", fmt.Errorf("registration: status %d: %.200s", a.status, a.body)
}

// postJSON posts a JSON body, with a bearer token when given.
func postJSON(ctx context.Context, c *http.Client, u string, body []byte, bearer string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return roundTrip(c, req)
}
