package jwks

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProtectedResource_Metadata: the RFC 9728 document, served over HTTP
// where §3.1 puts it, with the resource canonicalised and the bearer and
// DPoP members taken from the middleware, whatever the caller wrote.
func TestProtectedResource_Metadata(t *testing.T) {
	clk := newFakeClock()
	f := newFakeIssuer(t, newTestKey(t, "ES256"))
	for _, tc := range []struct {
		name, resource, canonical, path string
		dpop                            bool
	}{
		{"path", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp", "/.well-known/oauth-protected-resource/mcp", false},
		{"no path", "https://mcp.example.com", "https://mcp.example.com", "/.well-known/oauth-protected-resource", false},
		{"slash only", "https://mcp.example.com/", "https://mcp.example.com", "/.well-known/oauth-protected-resource", false},
		{"case and default port", "HTTPS://MCP.Example.COM:443/Tools/v1", "https://mcp.example.com/Tools/v1", "/.well-known/oauth-protected-resource/Tools/v1", false},
		{"other port kept", "https://mcp.example.com:8443/mcp/", "https://mcp.example.com:8443/mcp/", "/.well-known/oauth-protected-resource/mcp/", false},
		{"IPv6, default port", "https://[2001:DB8::1]:443/mcp", "https://[2001:db8::1]/mcp", "/.well-known/oauth-protected-resource/mcp", false},
		{"loopback http", "http://127.0.0.1:9000/mcp", "http://127.0.0.1:9000/mcp", "/.well-known/oauth-protected-resource/mcp", false},
		{"with DPoP", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp", "/.well-known/oauth-protected-resource/mcp", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []Option{WithAudience(tc.canonical)}
			if tc.dpop {
				opts = append(opts, WithDPoP(newTestChecker(t, clk, WithDPoPAlgorithms("ES256", "EdDSA"))))
			}
			v := newTestVerifier(t, f, clk, opts...)
			pr, err := NewProtectedResource(v, ResourceMetadata{
				Resource:                      tc.resource,
				ScopesSupported:               []string{"tools", "prompts"},
				ResourceName:                  "Example MCP",
				ResourceDocumentation:         "https://docs.example.com/mcp",
				BearerMethodsSupported:        []string{"query"}, // replaced: the middleware reads the header only
				DPoPSigningAlgValuesSupported: []string{"HS256"}, // replaced: from the verifier
			})
			if err != nil {
				t.Fatal(err)
			}
			if pr.Resource() != tc.canonical || pr.MetadataPath() != tc.path {
				t.Errorf("Resource, MetadataPath = %q, %q; want %q, %q", pr.Resource(), pr.MetadataPath(), tc.canonical, tc.path)
			}
			if want := strings.TrimSuffix(tc.canonical, strings.TrimPrefix(tc.path, WellKnownProtectedResource)) + tc.path; pr.MetadataURL() != want {
				t.Errorf("MetadataURL = %q, want %q", pr.MetadataURL(), want)
			}

			mux := http.NewServeMux()
			mux.Handle(pr.MetadataPath(), pr)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			resp, err := http.Get(srv.URL + pr.MetadataPath())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
				resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Cache-Control") == "" {
				t.Fatalf("GET metadata: %d %v %s", resp.StatusCode, resp.Header, body)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"resource":                 tc.canonical,
				"authorization_servers":    []any{f.URL()},
				"scopes_supported":         []any{"tools", "prompts"},
				"bearer_methods_supported": []any{"header"},
				"resource_name":            "Example MCP",
				"resource_documentation":   "https://docs.example.com/mcp",
			}
			if tc.dpop {
				want["dpop_signing_alg_values_supported"] = []any{"ES256", "EdDSA"}
			}
			if g, w := mustJSON(t, got), mustJSON(t, want); string(g) != string(w) {
				t.Errorf("metadata = %s\nwant       %s", g, w)
			}
			if md := pr.Metadata(); md.Resource != tc.canonical || len(md.BearerMethodsSupported) != 1 {
				t.Errorf("Metadata() = %+v", md)
			}

			// A browser's preflight of a GET with a header (the MCP
			// SDK's MCP-Protocol-Version): any origin, any header.
			req, _ := http.NewRequest(http.MethodOptions, srv.URL+pr.MetadataPath(), nil)
			req.Header.Set("Origin", "http://127.0.0.1:6274")
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "mcp-protocol-version")
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
				resp.Header.Get("Access-Control-Allow-Headers") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
				t.Errorf("preflight of the metadata: %d %v", resp.StatusCode, resp.Header)
			}

			req, _ = http.NewRequest(http.MethodPost, srv.URL+pr.MetadataPath(), strings.NewReader("{}"))
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("POST metadata: %d Allow=%q, want 405 GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
			}
		})
	}
}

// TestNewProtectedResource_Config: each mistake is refused with an error
// that names the field and the fix.
func TestNewProtectedResource_Config(t *testing.T) {
	clk := newFakeClock()
	f := newFakeIssuer(t, newTestKey(t, "ES256"))
	v := newTestVerifier(t, f, clk, WithAudience("https://mcp.example.com/mcp", "http://mcp.internal/mcp"))
	for _, tc := range []struct {
		name string
		md   ResourceMetadata
		want string
	}{
		{"empty", ResourceMetadata{}, "resource is empty"},
		{"fragment", ResourceMetadata{Resource: "https://mcp.example.com/mcp#x"}, "without fragment"},
		{"empty fragment", ResourceMetadata{Resource: "https://mcp.example.com/mcp#"}, "without fragment"},
		{"query", ResourceMetadata{Resource: "https://mcp.example.com/mcp?a=b"}, "query"},
		{"user info", ResourceMetadata{Resource: "https://u:p@mcp.example.com/mcp"}, "user information"},
		{"relative", ResourceMetadata{Resource: "/mcp"}, "no host"},
		{"not http", ResourceMetadata{Resource: "urn:example:mcp"}, "without fragment"},
		{"dot segment", ResourceMetadata{Resource: "https://mcp.example.com/a/../mcp"}, "without . or .. segments"},
		{"plain http off loopback", ResourceMetadata{Resource: "http://mcp.internal/mcp"}, "not https"},
		{"not an audience", ResourceMetadata{Resource: "https://other.example.com/mcp"}, `add jwks.WithAudience("https://other.example.com/mcp")`},
		{"authorization server http", ResourceMetadata{Resource: "https://mcp.example.com/mcp",
			AuthorizationServers: []string{"http://auth.example.com"}}, "authorization server"},
		{"scope with space", ResourceMetadata{Resource: "https://mcp.example.com/mcp", ScopesSupported: []string{"a b"}}, `scope "a b"`},
		{"scope with quote", ResourceMetadata{Resource: "https://mcp.example.com/mcp", ScopesSupported: []string{`a"`}}, "scope"},
		{"empty scope", ResourceMetadata{Resource: "https://mcp.example.com/mcp", ScopesSupported: []string{""}}, "scope"},
		{"documentation not a URL", ResourceMetadata{Resource: "https://mcp.example.com/mcp", ResourceDocumentation: "docs"}, "resource_documentation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewProtectedResource(v, tc.md)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewProtectedResource = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := NewProtectedResource(nil, ResourceMetadata{Resource: "https://mcp.example.com/mcp"}); err == nil {
		t.Error("nil verifier accepted")
	}
	// With WithInsecureHTTP, as for the issuer, plain http anywhere.
	vi := newTestVerifier(t, f, clk, WithAudience("http://mcp.internal/mcp"), WithInsecureHTTP())
	if _, err := NewProtectedResource(vi, ResourceMetadata{Resource: "http://mcp.internal/mcp"}); err != nil {
		t.Errorf("WithInsecureHTTP: %v", err)
	}
}

// TestProtectedResource_Middleware: the middleware's answers point at the
// metadata (RFC 9728 §5.1) and name the needed scope (RFC 6750 §3.1), and
// a token for another resource the same verifier accepts is refused here.
func TestProtectedResource_Middleware(t *testing.T) {
	k := newTestKey(t, "ES256")
	clk := newFakeClock()
	f := newFakeIssuer(t, k)
	const resA, resB = "http://127.0.0.1:7001/mcp", "http://127.0.0.1:7002/mcp"
	// One verifier for two resources on one process: the audience check of
	// the verifier alone would let a token for B in at A.
	v := newTestVerifier(t, f, clk, WithAudience(resA, resB))
	pr, err := NewProtectedResource(v, ResourceMetadata{Resource: resA, ScopesSupported: []string{"tools"}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(pr.MetadataPath(), pr)
	mux.Handle("/mcp", HTTPMiddleware(v, WithProtectedResource(pr), RequireScopes("tools"))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := ClaimsFromContext(r.Context())
			_, _ = w.Write([]byte("sub=" + c.Subject))
		})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	token := func(aud any, scope string) string {
		c := f.claims(clk.Now())
		c["aud"], c["scope"] = aud, scope
		return "Bearer " + sign(t, k, c, nil)
	}
	const rm = `resource_metadata="http://127.0.0.1:7001/.well-known/oauth-protected-resource/mcp"`
	for _, tc := range []middlewareCase{
		{"no token", nil, 401, `Bearer scope="tools", ` + rm,
			`{"error":"unauthorized","error_description":"bearer token required"}` + "\n"},
		{"invalid token", []string{token(resA, "tools") + "x"}, 401,
			`Bearer error="invalid_token", error_description="the access token is invalid", scope="tools", ` + rm,
			`{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n"},
		{"token for resource B at A", []string{token(resB, "tools")}, 401,
			`Bearer error="invalid_token", error_description="the access token is invalid", scope="tools", ` + rm,
			`{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n"},
		{"token for another audience the verifier refuses", []string{token("api", "tools")}, 401,
			`Bearer error="invalid_token", error_description="the access token is invalid", scope="tools", ` + rm,
			`{"error":"invalid_token","error_description":"the access token is invalid"}` + "\n"},
		{"scope missing", []string{token(resA, "prompts")}, 403,
			`Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="tools", ` + rm,
			`{"error":"insufficient_scope","error_description":"the access token lacks a required scope"}` + "\n"},
		{"two headers: 400 carries no metadata", []string{token(resA, "tools"), token(resA, "tools")}, 400,
			`Bearer error="invalid_request", error_description="more than one Authorization header"`,
			`{"error":"invalid_request","error_description":"more than one Authorization header"}` + "\n"},
		{"token for A", []string{token(resA, "tools")}, 200, "", "sub=user-1"},
		{"token for A and B", []string{token([]string{resB, resA}, "tools")}, 200, "", "sub=user-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			for _, hv := range tc.header {
				req.Header.Add("Authorization", hv)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			checkResponse(t, rec, tc)
			// A client in a browser tab reads the challenge only if the
			// answer exposes it (when the application allows its origin).
			if tc.wantStatus >= 400 && !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
				t.Errorf("%d without WWW-Authenticate in Access-Control-Expose-Headers: %v", tc.wantStatus, rec.Header())
			}
		})
	}

	// The refusal of B's token at A wraps ErrAudience, for metrics.
	req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	req.Header.Set("Authorization", token(resB, "tools"))
	_, ref := NewAuthenticator(v, WithProtectedResource(pr)).Authenticate(req)
	if ref == nil || !errors.Is(ref, ErrAudience) {
		t.Errorf("refusal = %v, want ErrAudience", ref)
	}
}

// TestProtectedResource_DPoPChallenges: with DPoP on, each challenge
// carries resource_metadata, and the metadata lists the proof algorithms.
func TestProtectedResource_DPoPChallenges(t *testing.T) {
	e := newDPoPEnv(t)
	const res = "http://127.0.0.1:7001/mcp"
	v := newTestVerifier(t, e.issuer, e.clk, WithAudience(res), WithDPoP(e.checker))
	pr, err := NewProtectedResource(v, ResourceMetadata{Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	const rm = `resource_metadata="http://127.0.0.1:7001/.well-known/oauth-protected-resource/mcp"`
	algs := e.checker.Algorithms()
	a := NewAuthenticator(v, WithProtectedResource(pr), RequireScopes("tools"))
	for _, tc := range []struct{ name, authz, want string }{
		{"no token", "", `Bearer scope="tools", ` + rm + `, DPoP algs="` + algs + `", ` + rm},
		{"bad DPoP token", "DPoP x.y.z", `DPoP error="invalid_token", error_description="the access token is invalid", scope="tools", algs="` + algs + `", ` + rm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
				req.Header.Set("DPoP", "x.y.z")
			}
			_, ref := a.Authenticate(req)
			if ref == nil {
				t.Fatal("accepted")
			}
			if got := ref.WWWAuthenticate(); got != tc.want {
				t.Errorf("WWW-Authenticate = %q\n                  want %q", got, tc.want)
			}
		})
	}
	if got := strings.Join(pr.Metadata().DPoPSigningAlgValuesSupported, " "); got != algs {
		t.Errorf("dpop_signing_alg_values_supported = %q, want %q", got, algs)
	}
}

// TestWithProtectedResource_OtherVerifier: a ProtectedResource of another
// verifier is a wiring mistake caught at start-up, not a silent 401.
func TestWithProtectedResource_OtherVerifier(t *testing.T) {
	clk := newFakeClock()
	f := newFakeIssuer(t, newTestKey(t, "ES256"))
	v1 := newTestVerifier(t, f, clk, WithAudience("https://mcp.example.com/mcp"))
	v2 := newTestVerifier(t, f, clk, WithAudience("https://mcp.example.com/mcp"))
	pr, err := NewProtectedResource(v1, ResourceMetadata{Resource: "https://mcp.example.com/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	HTTPMiddleware(v2, WithProtectedResource(pr))
}
