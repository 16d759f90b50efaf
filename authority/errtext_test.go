package authority_test

import (
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// descOK is RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ).
func descOK(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// errorDescriptionParam is the error_description of a WWW-Authenticate
// challenge (RFC 6750 §3), up to the closing quote.
var errorDescriptionParam = regexp.MustCompile(`error_description="([^"]*)"`)

// TestErrorDescriptions_HTTP sends a request for every error path of the
// OAuth endpoints and the admin API, with hostile bytes wherever the
// request text can reach the answer (quotes, backslashes, controls,
// non-ASCII), plus every registered route with and without a token, and
// checks every error_description and WWW-Authenticate challenge.
func TestErrorDescriptions_HTTP(t *testing.T) {
	e := newEnv(t, envOptions{})
	adm := e.adminToken()
	sec := e.userClient("app", nil)
	e.createUser("alice")
	_, rt := e.login("app", sec, "alice", nil)
	svcSecret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"api"}})
	basicSvc := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+svcSecret))
	basicApp := "Basic " + base64.StdEncoding.EncodeToString([]byte("app:"+sec))
	const form = "application/x-www-form-urlencoded"
	const js = "application/json"
	cc := "grant_type=client_credentials"
	hostile := url.QueryEscape("a\"b\\c\td\u00a7e\u2003f")

	type req struct {
		method, path, ctype, body, auth string
	}
	bearer := "Bearer " + adm
	reqs := []req{
		// token endpoint
		{"GET", "/oauth2/token", "", "", basicSvc},
		{"POST", "/oauth2/token?x=1", form, cc, basicSvc},
		{"POST", "/oauth2/token", "text/plain", cc, basicSvc},
		{"POST", "/oauth2/token", form, cc + "&pad=" + strings.Repeat("a", 70<<10), basicSvc},
		{"POST", "/oauth2/token", form, cc + "&scope=%zz", basicSvc},
		{"POST", "/oauth2/token", form, cc + "&scope=a&scope=b", basicSvc},
		{"POST", "/oauth2/token", form, cc + "&" + hostile + "=1&" + hostile + "=2", basicSvc},
		{"POST", "/oauth2/token", form, "scope=read", basicSvc},
		{"POST", "/oauth2/token", form, "grant_type=" + hostile, basicSvc},
		{"POST", "/oauth2/token", form, cc, "Digest x"},
		{"POST", "/oauth2/token", form, cc, "Basic !!!"},
		{"POST", "/oauth2/token", form, cc + "&client_secret=x", basicSvc},
		{"POST", "/oauth2/token", form, cc + "&client_id=" + hostile, basicSvc},
		{"POST", "/oauth2/token", form, cc, ""},
		{"POST", "/oauth2/token", form, cc + "&client_id=" + hostile + "&client_secret=x", ""},
		{"POST", "/oauth2/token", form, cc, "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:wrong"))},
		{"POST", "/oauth2/token", form, cc, basicApp},
		{"POST", "/oauth2/token", form, cc + "&scope=" + hostile, basicSvc},
		{"POST", "/oauth2/token", form, cc + "&scope=read%09write", basicSvc},
		{"POST", "/oauth2/token", form, cc + "&scope=write", basicSvc},
		{"POST", "/oauth2/token", form, cc + "&audience=" + hostile, basicSvc},
		{"POST", "/oauth2/token", form, cc + "&audience=a&resource=b", basicSvc},
		{"POST", "/oauth2/token", form, "grant_type=password", basicSvc},
		{"POST", "/oauth2/token", form, "grant_type=password&username=alice", basicApp},
		{"POST", "/oauth2/token", form, "grant_type=password&username=" + hostile + "&password=x", basicApp},
		{"POST", "/oauth2/token", form, "grant_type=password&username=alice&password=" + url.QueryEscape(testPassword) + "&scope=" + hostile, basicApp},
		{"POST", "/oauth2/token", form, "grant_type=refresh_token", basicApp},
		{"POST", "/oauth2/token", form, "grant_type=refresh_token&refresh_token=" + hostile, basicApp},
		{"POST", "/oauth2/token", form, "grant_type=refresh_token&refresh_token=" + rt + "&scope=" + hostile, basicApp},
		{"POST", "/oauth2/token", form, "grant_type=refresh_token&refresh_token=" + rt + "&scope=read%0Awrite", basicApp},
		{"POST", "/oauth2/token", form, "grant_type=refresh_token&refresh_token=" + rt + "&scope=write", basicApp},
		{"POST", "/oauth2/token", form, "grant_type=refresh_token&refresh_token=" + rt + "&audience=" + hostile, basicApp},
		// revocation and introspection
		{"GET", "/oauth2/revoke", "", "", basicSvc},
		{"POST", "/oauth2/revoke", form, "grant_type=x&token=y", basicSvc},
		{"POST", "/oauth2/revoke", form, "token=y&token_type_hint=" + hostile, basicSvc},
		{"POST", "/oauth2/revoke", form, "", basicSvc},
		{"POST", "/oauth2/revoke", form, "token=" + rt, basicSvc},
		{"POST", "/oauth2/introspect", form, "token=y", basicSvc},
		{"POST", "/oauth2/introspect", form, "", basicSvc},
		// admin API
		{"GET", "/admin/keys", "", "", ""},
		{"GET", "/admin/keys", "", "", "Basic x"},
		{"GET", "/admin/keys", "", "", "Bearer " + hostile},
		{"GET", "/admin/keys", "", "", "Bearer " + e.token("svc", svcSecret, nil)},
		{"POST", "/admin/clients", "text/plain", "{}", bearer},
		{"POST", "/admin/clients", js, `{"client_id":"x","audiences":["a"],"sec\"ret\\":1}`, bearer},
		{"POST", "/admin/clients", js, `{"client_id":"x","audiences":"a"}`, bearer},
		{"POST", "/admin/clients", js, `{"client_id":"x","audiences":["a"],"access_token_ttl":"a\"b\\c"}`, bearer},
		{"POST", "/admin/clients", js, `{"client_id":"x","audiences":["a"]} {}`, bearer},
		{"POST", "/admin/clients", js, `{"client_id":"x",`, bearer},
		{"POST", "/admin/clients", js, `{"client_id":"a\"b","grant_types":["a\"b"],"token_endpoint_auth_methods":["\\"],"scopes":["a\"b","a\tb"],` +
			`"default_scopes":["\u00a7"],"audiences":["a\"b"],"default_audience":"\\","signing_alg":"a\"b","access_token_ttl":"2h",` +
			`"extra_claims":{"a\"b":"x","SCOPE":1,"":1},"refresh_idle_ttl":"1s","refresh_reuse_grace":"2m"}`, bearer},
		{"POST", "/admin/clients", js, `{"client_id":"svc","audiences":["a"]}`, bearer},
		{"PATCH", "/admin/clients/svc", js, `{"default_audience":"a\"b\u2003"}`, bearer},
		{"PATCH", "/admin/clients/nobody", js, `{}`, bearer},
		{"POST", "/admin/clients/svc/secret", js, `{"keep_previous":"9999h"}`, bearer},
		{"POST", "/admin/users", js, `{"username":"a b\"","password":"x","email":"a\"b","roles":["a\"b"],"claims":{"a\"b":1,"Sub":"x","EMAIL":"x"}}`, bearer},
		{"POST", "/admin/users", js, `{"username":"x","password":"a long password","password_hash":"\\x"}`, bearer},
		{"POST", "/admin/users", js, `{"username":"alice","password":"a long password"}`, bearer},
		{"PATCH", "/admin/users/nobody", js, `{}`, bearer},
		{"GET", "/admin/audit?limit=" + hostile, "", "", bearer},
		{"POST", "/admin/keys/rotate?force=" + hostile, js, `{}`, bearer},
		{"POST", "/admin/keys/" + hostile + "/revoke", js, `{}`, bearer},
		{"POST", "/admin/keys/rotate", js, `{}`, bearer},
		// router errors
		{"GET", "/" + hostile, "", "", ""},
		{"DELETE", "/healthz", "", "", ""},
	}
	srv, _, _ := headerServer(t, e) // its routes include /metrics and /readyz
	for _, r := range srv.RoutesForTest() {
		if r.Method == http.MethodConnect {
			continue
		}
		p := strings.NewReplacer(":id", hostile, ":kid", hostile).Replace(r.Path)
		reqs = append(reqs, req{r.Method, p, js, `{"a\"":1}`, ""}, req{r.Method, p, js, `{"a\"":1}`, bearer})
	}

	checked := 0
	for _, r := range reqs {
		hr, err := http.NewRequest(r.method, e.issuer+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.ctype != "" {
			hr.Header.Set("Content-Type", r.ctype)
		}
		if r.auth != "" {
			hr.Header.Set("Authorization", r.auth)
		}
		resp, err := e.http.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || r.method == http.MethodHead {
			continue // HEAD answers have no body
		}
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("%s %s = %d, body is not JSON: %q", r.method, r.path, resp.StatusCode, b)
			continue
		}
		d, _ := body["error_description"].(string)
		if !descOK(d) {
			t.Errorf("%s %s = %d, error_description %q has a character RFC 6749 forbids", r.method, r.path, resp.StatusCode, d)
		}
		if code, _ := body["error"].(string); code == "" || !descOK(code) {
			t.Errorf("%s %s = %d, error %q", r.method, r.path, resp.StatusCode, code)
		}
		for _, wa := range resp.Header.Values("WWW-Authenticate") {
			for _, m := range errorDescriptionParam.FindAllStringSubmatch(wa, -1) {
				if !descOK(m[1]) {
					t.Errorf("%s %s: WWW-Authenticate error_description %q", r.method, r.path, m[1])
				}
			}
		}
		checked++
	}
	if checked < len(reqs)/2 {
		t.Errorf("only %d of %d requests were refused: the table no longer reaches the error paths", checked, len(reqs))
	}
}

// errorFuncs are the functions and closures in authority whose string
// arguments become an error_description or a ValidationError problem
// (which the admin API sends as one).
var errorFuncs = regexp.MustCompile(`^(err[A-Z]\w*|bad|invalid|fail|tooMany)$`)

// TestErrorDescriptions_Source reads every non-test Go file of the package
// and of the registries whose validation problems the admin API sends
// (clients, users), and checks each string literal that reaches an error text: the
// arguments of errorFuncs and the values of Description and Problem
// fields. Each must be allowed in an error_description, and none may use
// %q (its quotes and escapes are not): clients.QuoteValue is the way to name a
// value.
func TestErrorDescriptions_Source(t *testing.T) {
	var files []string
	for _, pattern := range []string{"*.go", "../clients/*.go", "../users/*.go"} {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, matches...)
	}
	fset := token.NewFileSet()
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkLits := func(n ast.Node) {
			ast.Inspect(n, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
				}
				found++
				if !descOK(s) || strings.Contains(s, "%q") {
					t.Errorf("%s: error text %s has a character RFC 6749 forbids in error_description (or %%q)", fset.Position(lit.Pos()), lit.Value)
				}
				return true
			})
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && errorFuncs.MatchString(id.Name) {
					for _, a := range n.Args {
						checkLits(a)
					}
				}
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok && (id.Name == "Description" || id.Name == "Problem") {
					checkLits(n.Value)
				}
			}
			return true
		})
	}
	if found < 50 {
		t.Errorf("found only %d error texts: the scan no longer sees the error constructors", found)
	}
}
