package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/exchange"
)

// TestServe_TokenExchange: through `signet serve`, clients made with
// `signet clients create --grant ...token-exchange --exchange-audience`
// exchange a user's token along a chain A → B; discovery lists the grant;
// the CLI names the missing field of a client that has the grant and no
// audience to exchange into.
func TestServe_TokenExchange(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, nil)
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, logs := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	if _, errOut, err := usersCmd(t, "s3cret password\n", "create", "--server", m.URL(), "--username", "alice"); err != nil {
		t.Fatalf("users create: %v %s", err, errOut)
	}
	create := func(args ...string) string {
		t.Helper()
		out, errOut, err := clientsCmd(t, append([]string{"create", "--server", m.URL()}, args...)...)
		if err != nil {
			t.Fatalf("clients create %v: %v %s", args, err, errOut)
		}
		return decodeSecret(t, out).ClientSecret
	}
	web := create("--id", "web", "--grant", "password", "--scope", "read write", "--audience", "service-a")
	a := create("--id", "service-a", "--grant", clients.GrantTokenExchange, "--scope", "read write", "--audience", "service-a-self", "--exchange-audience", "service-b")
	b := create("--id", "service-b", "--grant", clients.GrantTokenExchange, "--scope", "read", "--audience", "service-b-self", "--exchange-audience", "service-c")
	if _, _, err := clientsCmd(t, "create", "--server", m.URL(), "--id", "lone", "--grant", clients.GrantTokenExchange, "--audience", "x"); err == nil || !strings.Contains(err.Error(), "token_exchange_audiences") {
		t.Errorf("exchange grant without --exchange-audience = %v, want a token_exchange_audiences problem", err)
	}

	post := func(form url.Values, id, secret string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, m.URL()+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token request by %s = %d %v", id, resp.StatusCode, body)
		}
		return body
	}
	user := post(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"s3cret password"}, "scope": {"read write"}}, "web", web)
	exch := func(subject, aud string) url.Values {
		return url.Values{"grant_type": {clients.GrantTokenExchange}, "subject_token": {subject}, "subject_token_type": {exchange.TypeAccessToken}, "audience": {aud}}
	}
	ta := post(exch(user["access_token"].(string), "service-b"), "service-a", a)
	tb := post(exch(ta["access_token"].(string), "service-c"), "service-b", b)
	if tb["issued_token_type"] != exchange.TypeAccessToken || tb["scope"] != "read" {
		t.Fatalf("B's answer = %v", tb)
	}
	parts := strings.Split(tb["access_token"].(string), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var cl struct {
		Aud string          `json:"aud"`
		Act json.RawMessage `json:"act"`
	}
	_ = json.Unmarshal(payload, &cl)
	if cl.Aud != "service-c" || string(cl.Act) != `{"act":{"sub":"service-a"},"sub":"service-b"}` {
		t.Fatalf("B's token: aud %q act %s", cl.Aud, cl.Act)
	}

	resp, err := http.Get(m.URL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Grants []string `json:"grant_types_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&md)
	if !slices.Contains(md.Grants, clients.GrantTokenExchange) {
		t.Errorf("grant_types_supported = %v, want token exchange", md.Grants)
	}
	if strings.Contains(logs.String(), user["access_token"].(string)[:40]) {
		t.Error("server logs contain a subject token")
	}
}
