// Command mcp is an MCP server built with the official Go SDK whose
// streamable HTTP endpoint is protected by Signet's jwks middleware: a
// client that arrives without a token is pointed at the server's RFC 9728
// metadata, finds Signet there, and comes back with a token whose aud is
// the server's resource URI. It has one tool, whoami.
//
//	go run . -issuer https://auth.example.com -resource https://mcp.example.com/mcp -addr :8080
//
// The test beside it (go test, needs node and chromium) drives the
// official TypeScript SDK's client against two of these servers and a real
// signet serve: see docs/mcp.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/signet-auth/signet/jwks"
)

// scope is the scope the tool needs; it is the resource's only entry in
// scopes_supported, so MCP clients ask for it.
const scope = "mcp:tools"

// newHandler returns the server's whole HTTP surface: the metadata document
// at its RFC 9728 §3.1 path, and the MCP endpoint at the resource's path
// behind the jwks middleware. v must accept resource as an audience.
func newHandler(v *jwks.Verifier, resource string) (http.Handler, error) {
	pr, err := jwks.NewProtectedResource(v, jwks.ResourceMetadata{
		Resource:        resource,
		ScopesSupported: []string{scope},
		ResourceName:    "Signet demo MCP server",
	})
	if err != nil {
		return nil, err
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "signet-demo", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "Says who the access token was issued to."}, whoami)
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)

	u, err := url.Parse(pr.Resource())
	if err != nil {
		return nil, err
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	mux := http.NewServeMux()
	mux.Handle(pr.MetadataPath(), pr)
	if pr.MetadataPath() != jwks.WellKnownProtectedResource {
		// The host has this one resource: clients written before RFC 9728
		// §3.1's path rule look only at the root name.
		mux.Handle(jwks.WellKnownProtectedResource, pr)
	}
	mux.Handle(path, jwks.HTTPMiddleware(v, jwks.WithProtectedResource(pr), jwks.RequireScopes(scope))(
		withTokenInfo(mcpHandler)))
	return mux, nil
}

// withTokenInfo hands the claims the jwks middleware verified to the MCP
// SDK as its auth.TokenInfo: the SDK then binds each session to the user
// who opened it (a session ID presented with another user's token is
// refused) and tool handlers find the user in req.Extra.TokenInfo. The SDK
// sets TokenInfo only from its own RequireBearerToken, so that is used
// here with a "verifier" that reads what jwks already checked.
func withTokenInfo(next http.Handler) http.Handler {
	fromClaims := func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		c, ok := jwks.ClaimsFromContext(r.Context())
		if !ok {
			return nil, auth.ErrInvalidToken // not reached: the jwks middleware runs first
		}
		return &auth.TokenInfo{UserID: c.Subject, Scopes: c.Scopes(), Expiration: c.Expiry,
			Extra: map[string]any{"client_id": c.ClientID, "aud": c.Audience}}, nil
	}
	return auth.RequireBearerToken(fromClaims, nil)(next)
}

type whoamiOut struct {
	Subject  string   `json:"subject"`
	ClientID string   `json:"client_id"`
	Audience []string `json:"audience"`
	Scopes   []string `json:"scopes"`
}

func whoami(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, whoamiOut, error) {
	ti := req.Extra.TokenInfo
	if ti == nil {
		return nil, whoamiOut{}, errors.New("no token info: the handler is not behind the middleware")
	}
	out := whoamiOut{Subject: ti.UserID, Scopes: ti.Scopes}
	out.ClientID, _ = ti.Extra["client_id"].(string)
	out.Audience, _ = ti.Extra["aud"].([]string)
	return nil, out, nil
}

func main() {
	issuer := flag.String("issuer", "", "Signet's issuer URL (required)")
	resource := flag.String("resource", "", "this server's resource URI, the URL clients connect to, e.g. https://mcp.example.com/mcp (required)")
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	if err := run(*issuer, *resource, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "mcp:", err)
		os.Exit(1)
	}
}

func run(issuer, resource, addr string) error {
	if issuer == "" || resource == "" {
		return errors.New("-issuer and -resource are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := jwks.NewVerifier(startCtx, issuer, jwks.WithAudience(resource), jwks.WithLogger(slog.Default()))
	if err != nil {
		return err
	}
	defer v.Close()
	h, err := newHandler(v, resource)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	slog.Info("MCP server listening", "addr", addr, "resource", resource)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
