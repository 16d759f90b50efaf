package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
)

// adminClient calls a running server's admin API with an admin access
// token obtained from SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET.
type adminClient struct {
	base  string
	http  *http.Client
	token string
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status      int
	Code        string
	Description string
}

func (e *apiError) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("server answered %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Description)
}

// newAdminClient exchanges the admin client credentials from the
// environment for a signet:admin token (client_credentials, audience
// signet-admin) at server.
func newAdminClient(ctx context.Context, server string) (*adminClient, error) {
	id, secret := os.Getenv("SIGNET_CLIENT_ID"), os.Getenv("SIGNET_CLIENT_SECRET")
	if id == "" || secret == "" {
		return nil, errors.New("--server needs admin credentials in SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET (signet init prints them)")
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http(s) URL such as http://localhost:8080", server)
	}
	base := strings.TrimSuffix(server, "/")
	hc := &http.Client{Timeout: 30 * time.Second}
	cc := clientcredentials.Config{
		ClientID:       id,
		ClientSecret:   secret,
		TokenURL:       base + "/oauth2/token",
		Scopes:         []string{authority.AdminScope},
		EndpointParams: url.Values{"audience": {authority.AdminAudience}},
		AuthStyle:      oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("admin token from %s: %w", base, &apiError{Status: re.Response.StatusCode, Code: re.ErrorCode, Description: re.ErrorDescription})
		}
		return nil, fmt.Errorf("admin token from %s: %w", base, err)
	}
	return &adminClient{base: base, http: hc, token: tok.AccessToken}, nil
}

// hasAdminAPI tells a missing object (404 from a route that exists) from
// a missing admin API (404 from every /admin route, as on the public
// listener of a server with a separate admin listener): GET /admin/keys
// always exists where the admin API is served.
func (a *adminClient) hasAdminAPI(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/admin/keys", nil)
	if err != nil {
		return true
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return true // say nothing about what could not be checked
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound
}

// do sends in (when not nil) as JSON to path and decodes the answer into
// out (when not nil). An error answer is an *apiError.
func (a *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	if method == http.MethodPost || method == http.MethodPatch || method == http.MethodPut {
		req.Header.Set("Content-Type", "application/json") // the admin API refuses anything else
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(b, &e)
		err := fmt.Errorf("%s %s: %w", method, path, &apiError{Status: resp.StatusCode, Code: e.Error, Description: e.Description})
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/admin") && !a.hasAdminAPI(ctx) {
			return fmt.Errorf("%s has no admin API (%w): a server with http.admin_addr set serves /admin only on that address; "+
				"pass the admin address as --server (signet drill: --admin-url)", a.base, err)
		}
		return err
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
