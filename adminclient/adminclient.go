// Package adminclient calls a running Signet's admin API (/admin/...) with
// a signet:admin access token: what `signet ... --server` and the drill use.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
)

// Client calls a running server's admin API with an admin access token.
type Client struct {
	base  string
	http  *http.Client
	token string
}

// Error is an error answer of the admin API.
type Error struct {
	Status      int
	Code        string
	Description string
}

func (e *Error) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("server answered %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Description)
}

// New exchanges the credentials of an admin client for a signet:admin
// token (client_credentials, audience signet-admin) at server.
func New(ctx context.Context, server, clientID, clientSecret string) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http(s) URL such as http://localhost:8080", server)
	}
	base := strings.TrimSuffix(server, "/")
	hc := &http.Client{Timeout: 30 * time.Second}
	cc := clientcredentials.Config{
		ClientID:       clientID,
		ClientSecret:   clientSecret,
		TokenURL:       base + "/oauth2/token",
		Scopes:         []string{authority.AdminScope},
		EndpointParams: url.Values{"audience": {authority.AdminAudience}},
		AuthStyle:      oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("admin token from %s: %w", base, &Error{Status: re.Response.StatusCode, Code: re.ErrorCode, Description: re.ErrorDescription})
		}
		return nil, fmt.Errorf("admin token from %s: %w", base, err)
	}
	return &Client{base: base, http: hc, token: tok.AccessToken}, nil
}

// HasAdminAPI tells a missing object (404 from a route that exists) from
// a missing admin API (404 from every /admin route, as on the public
// listener of a server with a separate admin listener): GET /admin/keys
// always exists where the admin API is served.
func (a *Client) HasAdminAPI(ctx context.Context) bool {
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

// Do sends in (when not nil) as JSON to path and decodes the answer into
// out (when not nil). An error answer is an *Error.
func (a *Client) Do(ctx context.Context, method, path string, in, out any) error {
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
		err := fmt.Errorf("%s %s: %w", method, path, &Error{Status: resp.StatusCode, Code: e.Error, Description: e.Description})
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/admin") && !a.HasAdminAPI(ctx) {
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

// Download streams the answer to GET path into w.
func (a *Client) Download(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	// No overall timeout: a large store takes as long as it takes.
	resp, err := (&http.Client{Transport: a.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(b, &e)
		return fmt.Errorf("GET %s: %w", path, &Error{Status: resp.StatusCode, Code: e.Error, Description: e.Description})
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
