package jwks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/jwks/internal/testauthority"
)

// The examples run against an in-process authority standing in for
// Signet at https://auth.example.com.

func ExampleNewVerifier() {
	authority := testauthority.Start()
	defer authority.Close()

	// The context bounds the start-up fetches (metadata and key set) only:
	// the verifier keeps its keys fresh until Close.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := jwks.NewVerifier(ctx, authority.Issuer(), jwks.WithAudience("https://billing.internal"))
	if err != nil {
		log.Fatalf("cannot start without the issuer's keys: %v", err)
	}
	defer v.Close()

	fmt.Println("keys:", v.Stats().Keys)
	fmt.Println("healthy:", v.Healthy() == nil)
	// Output:
	// keys: 1
	// healthy: true
}

func ExampleVerifier_Verify() {
	authority := testauthority.Start()
	defer authority.Close()
	ctx := context.Background()
	v, err := jwks.NewVerifier(ctx, authority.Issuer(), jwks.WithAudience("https://billing.internal"))
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	claims, err := v.Verify(ctx, authority.Token("alice", "https://billing.internal", "invoices:read"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Subject, claims.ClientID, claims.Scopes())

	// Refusals wrap one error per check, for metrics.
	_, err = v.Verify(ctx, authority.Token("alice", "https://mail.internal", "invoices:read"))
	fmt.Println(errors.Is(err, jwks.ErrAudience))
	_, err = v.Verify(ctx, authority.ExpiredToken("alice", "https://billing.internal", "invoices:read"))
	fmt.Println(errors.Is(err, jwks.ErrExpired))
	// Output:
	// alice example-client [invoices:read]
	// true
	// true
}

func ExampleHTTPMiddleware() {
	authority := testauthority.Start()
	defer authority.Close()
	v, err := jwks.NewVerifier(context.Background(), authority.Issuer(), jwks.WithAudience("https://billing.internal"))
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	listInvoices := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := jwks.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "invoices of %s", claims.Subject)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /invoices", jwks.HTTPMiddleware(v, jwks.RequireScopes("invoices:read"))(listInvoices))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, token := range []string{
		authority.Token("alice", "https://billing.internal", "invoices:read"),
		authority.Token("bob", "https://billing.internal", "profile"),
		"not-a-token",
		"",
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/invoices", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n", resp.StatusCode, bytes.TrimSpace(body))
	}
	// Output:
	// 200 invoices of alice
	// 403 {"error":"insufficient_scope","error_description":"the access token lacks a required scope"}
	// 401 {"error":"invalid_token","error_description":"the access token is invalid"}
	// 401 {"error":"unauthorized","error_description":"bearer token required"}
}

func ExampleClaims_HasScope() {
	authority := testauthority.Start()
	defer authority.Close()
	ctx := context.Background()
	v, err := jwks.NewVerifier(ctx, authority.Issuer(), jwks.WithAudience("https://billing.internal"))
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	claims, err := v.Verify(ctx, authority.Token("alice", "https://billing.internal", "invoices:read invoices:write"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.HasScope("invoices:write"))
	fmt.Println(claims.HasScope("invoices"))     // whole scopes only
	fmt.Println(claims.HasScope("admin:delete")) // not granted
	// Output:
	// true
	// false
	// false
}

// A resource server (an MCP server, say) that clients discover on their
// own: its 401 points at its RFC 9728 metadata, which names the
// authorization server to get a token from and the scopes to ask for.
func ExampleNewProtectedResource() {
	authority := testauthority.Start()
	defer authority.Close()
	const resource = "https://mcp.example.com/mcp" // what clients send as RFC 8707 resource
	v, err := jwks.NewVerifier(context.Background(), authority.Issuer(), jwks.WithAudience(resource))
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	pr, err := jwks.NewProtectedResource(v, jwks.ResourceMetadata{
		Resource:        resource,
		ScopesSupported: []string{"tools"},
	}) // authorization_servers: the verifier's issuer
	if err != nil {
		log.Fatal(err)
	}

	tools := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := jwks.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "tools for %s", claims.Subject)
	})
	mux := http.NewServeMux()
	mux.Handle(pr.MetadataPath(), pr) // /.well-known/oauth-protected-resource/mcp, outside the middleware
	mux.Handle("/mcp", jwks.HTTPMiddleware(v, jwks.WithProtectedResource(pr), jwks.RequireScopes("tools"))(tools))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, token := range []string{
		"",
		authority.Token("alice", "https://other.example.com/mcp", "tools"), // another resource's token
		authority.Token("alice", resource, "profile"),
		authority.Token("alice", resource, "tools"),
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, string(body))
			continue
		}
		fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Output:
	// 401 Bearer scope="tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// 401 Bearer error="invalid_token", error_description="the access token is invalid", scope="tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// 403 Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// 200 tools for alice
}
