package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/signet-auth/signet/jwks"
)

// This module is outside the root module's go test ./...: it needs node
// (with npm ci run in client/) and Chromium, which .ci/run installs before
// it runs this test. Nothing here skips.

const (
	username = "alice"
	password = "mcp interop password 1"
)

// signet is a real signet serve on loopback, set up with its CLI.
type signet struct {
	bin, issuer string
	env         []string
	log         *lockedBuffer
}

// startSignet builds cmd/signet from this repository, initialises a data
// directory, creates the user and starts signet serve with the
// configuration file config.
func startSignet(t *testing.T, config string) *signet {
	t.Helper()
	dir := t.TempDir()
	configFile := filepath.Join(dir, "signet.yaml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "signet")
	build := exec.Command("go", "build", "-o", bin, "./cmd/signet")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/signet: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	s := &signet{bin: bin, issuer: "http://" + addr, log: &lockedBuffer{}}
	s.env = append(os.Environ(), "SIGNET_DATA_DIR="+filepath.Join(dir, "data"), "SIGNET_ADDR="+addr,
		"SIGNET_ISSUER="+s.issuer, "SIGNET_LOG_LEVEL=warn", "SIGNET_CONFIG="+configFile)
	var admin struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if out := s.run(t, "", "init", "--id", "admin"); json.NewDecoder(strings.NewReader(out[strings.Index(out, "{"):])).Decode(&admin) != nil || admin.Secret == "" {
		t.Fatalf("signet init printed no admin secret:\n%s", out)
	}
	s.run(t, password+"\n", "users", "create", "--username", username, "--email", "alice@example.com", "--name", "Alice Interop")
	cmd := exec.Command(bin, "serve")
	cmd.Env, cmd.Stdout, cmd.Stderr = s.env, s.log, s.log
	// While it runs, the CLI works through its admin API.
	s.env = append(s.env, "SIGNET_CLIENT_ID=admin", "SIGNET_CLIENT_SECRET="+admin.Secret)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.issuer + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("signet serve not ready: %v\n%s", err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs a signet CLI command against the data directory.
func (s *signet) run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env, cmd.Stdin = s.env, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("signet %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mcpServer is one MCP server of server.go on its own loopback port, with
// the resource URI http://127.0.0.1:PORT/mcp. listenMCP takes the port
// before Signet starts (Signet's policy names the resource URIs);
// start serves on it once Signet runs.
type mcpServer struct {
	resource string
	ln       net.Listener
	srv      *http.Server
}

func listenMCP(t *testing.T) *mcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &mcpServer{resource: "http://" + ln.Addr().String() + "/mcp", ln: ln}
}

func (m *mcpServer) start(t *testing.T, issuer string) {
	t.Helper()
	resource := m.resource
	v, err := jwks.NewVerifier(t.Context(), issuer, jwks.WithAudience(resource))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	h, err := newHandler(v, resource)
	if err != nil {
		t.Fatal(err)
	}
	m.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.srv.Serve(m.ln) }()
	t.Cleanup(func() { _ = m.srv.Close() })
}

// callback is the client's loopback redirect URI: the Go test, not the
// Node script, receives the browser there and hands the code on.
type callback struct {
	uri   string
	codes chan url.Values
}

func startCallback(t *testing.T) *callback {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cb := &callback{uri: "http://" + ln.Addr().String() + "/callback", codes: make(chan url.Values, 4)}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		cb.codes <- q
		fmt.Fprintf(w, `<!DOCTYPE html><title>callback</title><p id="cb-done">%s</p>`, html.EscapeString(q.Get("error")))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return cb
}

// browser is a headless Chromium, as in cmd/signet/browser_test.go.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	chrome := ""
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		t.Fatal("no Chromium found: install Debian's chromium (apt-get install -y chromium); .ci/run does")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(480, 760)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// event is one line the Node script prints.
type event struct {
	Event    string          `json:"event"`
	URL      string          `json:"url"`
	Method   string          `json:"method"`
	Status   int             `json:"status"`
	Body     string          `json:"body"`
	Server   string          `json:"server"`
	After    string          `json:"after"`
	Result   whoamiOut       `json:"result"`
	Tokens   json.RawMessage `json:"tokens"`
	WWWAuth  string          `json:"www_authenticate"`
	Message  string          `json:"message"`
	ClientID string          `json:"client_id"`
	// The client event: what the SDK saved from its registration.
	AuthMethod string `json:"auth_method"`
	HasSecret  bool   `json:"has_secret"`
}

// nodeClient is client/client.mjs running.
type nodeClient struct {
	stdin  io.WriteCloser
	events chan event
	all    []event // every event read so far, fetches included
	stderr *lockedBuffer
}

func startNodeClient(t *testing.T, env ...string) *nodeClient {
	t.Helper()
	if _, err := os.Stat(filepath.Join("client", "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		t.Fatalf("the MCP TypeScript SDK is not installed: run (cd interop/mcp/client && npm ci); .ci/run does (%v)", err)
	}
	cmd := exec.Command("node", "client.mjs")
	cmd.Dir = "client"
	cmd.Env = append(os.Environ(), env...)
	nc := &nodeClient{events: make(chan event, 256), stderr: &lockedBuffer{}}
	cmd.Stderr = nc.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	nc.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{Event: "unparsed", Message: sc.Text()}
			}
			nc.events <- e
		}
		close(nc.events)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return nc
}

// next returns the next event that is not a fetch, failing on an error
// event, the end of the script or a timeout.
func (nc *nodeClient) next(t *testing.T, want string) event {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case e, ok := <-nc.events:
			if !ok {
				t.Fatalf("the Node client ended before %q\nstderr: %s", want, nc.stderr)
			}
			nc.all = append(nc.all, e)
			switch e.Event {
			case "fetch", "tokens", "client":
				continue
			case want:
				return e
			}
			t.Fatalf("the Node client said %s (%s), want %q\nstderr: %s", e.Event, e.Message, want, nc.stderr)
		case <-timeout:
			t.Fatalf("no %q from the Node client in 60 s\nstderr: %s", want, nc.stderr)
		}
	}
}

// fetch returns the first request the SDK made to url, or nil.
func (nc *nodeClient) fetch(url string) *event {
	for _, e := range nc.all {
		if e.Event == "fetch" && e.URL == url {
			return &e
		}
	}
	return nil
}

// saved is what the SDK last saved with its provider's
// saveClientInformation.
func (nc *nodeClient) saved() event {
	var last event
	for _, e := range nc.all {
		if e.Event == "client" {
			last = e
		}
	}
	return last
}

// savedClientID is the client_id the SDK last saved.
func (nc *nodeClient) savedClientID() string { return nc.saved().ClientID }

// fetches are the requests the SDK made, in order.
func (nc *nodeClient) fetches() []event {
	var out []event
	for _, e := range nc.all {
		if e.Event == "fetch" {
			out = append(out, e)
		}
	}
	return out
}

// TestMCP_TypeScriptSDK: the official MCP TypeScript SDK's client, with its
// OAuth client provider, against two Go SDK MCP servers protected by the
// jwks middleware and a real signet serve, the user logging in through the
// hosted login page in Chromium. Each row is one way the client has its
// client_id: registered beforehand, registered by the SDK itself (RFC
// 7591), and a client ID metadata document the test serves.
func TestMCP_TypeScriptSDK(t *testing.T) {
	a, b := listenMCP(t), listenMCP(t)
	docs := startDocServer(t)
	// The policy docs/mcp.md gives an operator, plus the test CA for the
	// document server (a loopback issuer lets the fetcher dial loopback).
	s := startSignet(t, fmt.Sprintf(`outbound:
  ca_file: %s
dynamic_clients:
  registration:
    enabled: true
  metadata_documents:
    enabled: true
  auth_methods: [none, client_secret_post, private_key_jwt]
  scopes: [%s]
  audiences: [%s, %s]
`, docs.caFile, scope, b.resource, a.resource))
	a.start(t, s.issuer)
	b.start(t, s.issuer)
	// Each server has its host to itself, so it answers at the root
	// well-known name too, for clients older than RFC 9728 §3.1's paths.
	for _, m := range []*mcpServer{a, b} {
		root := strings.TrimSuffix(m.resource, "/mcp") + jwks.WellKnownProtectedResource
		resp, err := http.Get(root)
		if err != nil {
			t.Fatal(err)
		}
		var md jwks.ResourceMetadata
		err = json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || md.Resource != m.resource || !slices.Equal(md.AuthorizationServers, []string{s.issuer}) {
			t.Errorf("GET %s: %d %+v %v, want the metadata of %s naming %s", root, resp.StatusCode, md, err, m.resource, s.issuer)
		}
	}

	docURL := docs.url + "/oauth/mcp-client.json"
	type flowRow struct {
		name string
		// setup registers what the row needs at Signet and returns the
		// Node client's environment for it.
		setup func(t *testing.T, cb *callback) []string
		// identity is what the consent page says the client's identity
		// is ("" for an operator's client, which is not marked).
		identity string
		// check looks at the SDK's requests and the client_id it used.
		check func(t *testing.T, nc *nodeClient, clientID string)
		shot  string
	}
	dcrRow := func(method string) flowRow {
		return flowRow{name: "dynamic registration, " + method, setup: func(t *testing.T, cb *callback) []string {
			return []string{"AUTH_METHOD=" + method}
		}, identity: "registered dynamically", check: func(t *testing.T, nc *nodeClient, clientID string) {
			f := nc.fetch(s.issuer + "/oauth2/register")
			if f == nil {
				t.Fatal("the SDK never posted to Signet's registration endpoint")
			}
			var body struct {
				Scope      string `json:"scope"`
				AuthMethod string `json:"token_endpoint_auth_method"`
			}
			_ = json.Unmarshal([]byte(f.Body), &body)
			if f.Method != "POST" || f.Status != http.StatusCreated || body.Scope != scope || body.AuthMethod != method {
				t.Errorf("registration %s %d %s: want POST 201 with scope %s and method %s", f.Method, f.Status, f.Body, scope, method)
			}
			saved := nc.saved()
			if !strings.HasPrefix(clientID, "dcr-") || saved.ClientID != clientID || saved.AuthMethod != method ||
				saved.HasSecret != (method != "none") {
				t.Errorf("the tokens' client_id = %q, the SDK saved %+v: want the registered dcr-… id, method %s, a secret only if not none",
					clientID, saved, method)
			}
			// Every token request authenticated as registered.
			for _, f := range nc.fetches() {
				if f.URL != s.issuer+"/oauth2/token" {
					continue
				}
				form, _ := url.ParseQuery(f.Body)
				if (form.Get("client_secret") != "") != (method == "client_secret_post") || form.Get("client_id") != clientID {
					t.Errorf("token request %s for a %s client: client_id %q, client_secret sent %v", form.Get("grant_type"), method,
						form.Get("client_id"), form.Get("client_secret") != "")
				}
			}
		}}
	}
	for _, row := range []flowRow{
		{name: "pre-registered public client", setup: func(t *testing.T, cb *callback) []string {
			// B is the default audience, so an aud of A can only come
			// from the RFC 8707 resource the SDK sent.
			s.run(t, "", "clients", "create", "--server", s.issuer, "--id", "mcp-interop", "--name", "MCP Interop",
				"--public", "--application-type", "native", "--redirect-uri", cb.uri,
				"--grant", "authorization_code", "--grant", "refresh_token", "--scope", scope,
				"--audience", b.resource, "--audience", a.resource, "--default-audience", b.resource)
			return []string{"CLIENT_ID=mcp-interop"}
		}, check: func(t *testing.T, nc *nodeClient, clientID string) {
			if clientID != "mcp-interop" {
				t.Errorf("the tokens' client_id = %q, want mcp-interop", clientID)
			}
			if f := nc.fetch(s.issuer + "/oauth2/register"); f != nil {
				t.Errorf("a registered client registered again: %+v", *f)
			}
		}},
		// The SDK registers itself (no CLIENT_ID), as a public client, and
		// as its own example clients do, with client_secret_post.
		dcrRow("none"),
		dcrRow("client_secret_post"),
		{name: "client ID metadata document", setup: func(t *testing.T, cb *callback) []string {
			// A native app listens on whatever loopback port is free, so
			// its document, published once, names no port (RFC 8252 §7.3).
			docs.set(map[string]any{"client_id": docURL, "client_name": "MCP Interop Tool",
				"redirect_uris": []string{"http://127.0.0.1/callback"}, "application_type": "native",
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "none", "scope": scope})
			return []string{"CLIENT_METADATA_URL=" + docURL}
		}, identity: strings.TrimPrefix(docs.url, "https://"), shot: "mcp-consent-cimd.png",
			check: func(t *testing.T, nc *nodeClient, clientID string) {
				if f := nc.fetch(s.issuer + "/oauth2/register"); f != nil {
					t.Errorf("the SDK registered although Signet takes metadata documents: %+v", *f)
				}
				if clientID != docURL || nc.savedClientID() != docURL {
					t.Errorf("the tokens' client_id = %q, the SDK saved %q: want %s", clientID, nc.savedClientID(), docURL)
				}
			}},
	} {
		t.Run(row.name, func(t *testing.T) {
			cb := startCallback(t)
			bctx := startBrowser(t) // its own, so the user logs in in each row
			env := append(row.setup(t, cb), "SERVER_A="+a.resource, "SERVER_B="+b.resource, "REDIRECT_URI="+cb.uri)
			nc := startNodeClient(t, env...)
			consent := func(t *testing.T, page string) {
				marked := strings.Contains(page, "(unverified)")
				if row.identity == "" && marked {
					t.Errorf("the consent page marks an operator's client as unverified:\n%s", page)
				}
				if row.identity != "" && (!marked || !strings.Contains(page, "Identity: "+row.identity)) {
					t.Errorf("the consent page lacks \"(unverified)\" and \"Identity: %s\":\n%s", row.identity, page)
				}
			}
			clientID := checkFlow(t, nc, bctx, cb, s, a, b, consent, row.shot)
			row.check(t, nc, clientID)
		})
	}
}

// docServer serves client ID metadata documents over https on loopback
// with a test CA, written to caFile for Signet's outbound.ca_file.
type docServer struct {
	url, caFile string
	mu          sync.Mutex
	doc         []byte
}

func startDocServer(t *testing.T) *docServer {
	t.Helper()
	d := &docServer{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		doc := d.doc
		d.mu.Unlock()
		if r.URL.Path != "/oauth/mcp-client.json" || doc == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	d.url = srv.URL
	d.caFile = filepath.Join(t.TempDir(), "test-ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(d.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *docServer) set(doc map[string]any) {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	d.mu.Lock()
	d.doc = b
	d.mu.Unlock()
}

// checkFlow follows the Node client through the whole flow and returns
// the client_id the tool saw in the token. consent checks the consent
// page's text; shot, if set, is the file in docs/img the consent page is
// saved to when SIGNET_UPDATE_SCREENSHOTS=1.
func checkFlow(t *testing.T, nc *nodeClient, bctx context.Context, cb *callback, s *signet, a, b *mcpServer,
	consent func(t *testing.T, page string), shot string) string {
	// 1. Discovery from A's 401 to Signet's authorization endpoint.
	authz := nc.next(t, "authorize")
	au, err := url.Parse(authz.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := au.Query()
	if !strings.HasPrefix(authz.URL, s.issuer+"/oauth2/authorize?") || q.Get("response_type") != "code" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("resource") != a.resource || q.Get("scope") != scope || q.Get("redirect_uri") != cb.uri {
		t.Errorf("authorization URL %s: want Signet's endpoint, code, S256, resource=%s, scope=%s", authz.URL, a.resource, scope)
	}
	wantFirst := []string{
		"POST " + a.resource + " 401",
		"GET " + strings.Replace(a.resource, "/mcp", jwks.WellKnownProtectedResource+"/mcp", 1) + " 200",
		"GET " + s.issuer + "/.well-known/oauth-authorization-server 200",
	}
	var got []string
	for _, f := range nc.fetches() {
		got = append(got, fmt.Sprintf("%s %s %d", f.Method, f.URL, f.Status))
	}
	if len(got) < len(wantFirst) || !slices.Equal(got[:len(wantFirst)], wantFirst) {
		t.Errorf("the SDK's requests:\n%s\nwant them to start with\n%s", strings.Join(got, "\n"), strings.Join(wantFirst, "\n"))
	}

	// 2. The user logs in and consents in Chromium; the browser lands on
	// the redirect URI with a code, which the SDK redeems.
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			body, _ := chromedp.Run(bctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			t.Fatalf("%s: %v\nat %s\npage: %s\nsignet logs:\n%s", name, err, loc, body, s.log)
		}
	}
	step("login page", chromedp.Navigate(authz.URL), chromedp.WaitVisible(chromedp.CSS("#username")))
	step("log in", chromedp.SendKeys(chromedp.CSS("#username"), username), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`button[value=allow]`)))
	page, err := chromedp.Run(bctx, chromedp.Evaluate[string]("document.body.innerText"))
	if err != nil {
		t.Fatal(err)
	}
	consent(t, page)
	if shot != "" && os.Getenv("SIGNET_UPDATE_SCREENSHOTS") == "1" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", shot, err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", shot), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step("consent", chromedp.Click(chromedp.CSS(`button[value=allow]`)), chromedp.WaitReady(chromedp.CSS("#cb-done")))
	var back url.Values
	select {
	case back = <-cb.codes:
	case <-time.After(10 * time.Second):
		t.Fatal("the browser never reached the redirect URI")
	}
	if back.Get("code") == "" || back.Get("iss") != s.issuer {
		t.Fatalf("redirect URI got %v, want a code and iss=%s", back, s.issuer)
	}
	if _, err := io.WriteString(nc.stdin, back.Get("code")+"\n"); err != nil {
		t.Fatal(err)
	}
	nc.next(t, "authorized")

	// 3. The tool answers, for the user, with a token audienced to A.
	tool := nc.next(t, "tool")
	if tool.Result.Subject == "" || tool.Result.ClientID == "" || !slices.Equal(tool.Result.Audience, []string{a.resource}) ||
		!slices.Contains(tool.Result.Scopes, scope) {
		t.Errorf("whoami at A = %+v, want the user's subject, aud [%s], scope %s", tool.Result, a.resource, scope)
	}
	for _, e := range nc.all {
		if e.Event != "tokens" {
			continue
		}
		var tk struct {
			AccessToken     string `json:"access_token"`
			HasRefreshToken bool   `json:"has_refresh_token"`
		}
		_ = json.Unmarshal(e.Tokens, &tk)
		claims := jwtPayload(tk.AccessToken)
		if !tk.HasRefreshToken || claims["aud"] != a.resource {
			t.Errorf("tokens from the code: refresh token %v, access token claims %v; want a refresh token and aud %s",
				tk.HasRefreshToken, claims, a.resource)
		}
	}
	var redeemed, refreshed bool
	for _, f := range nc.fetches() {
		if f.URL != s.issuer+"/oauth2/token" {
			continue
		}
		form, _ := url.ParseQuery(f.Body)
		if form.Get("resource") != a.resource || f.Status != 200 {
			t.Errorf("token request %s (%d): want resource=%s, 200", f.Body, f.Status, a.resource)
		}
		redeemed = redeemed || form.Get("grant_type") == "authorization_code"
	}
	if !redeemed {
		t.Error("no code redemption at Signet's token endpoint")
	}

	// 4. After a 401 for a spoilt access token the SDK refreshes once and
	// the call goes through.
	again := nc.next(t, "tool")
	if again.After != "refresh" || again.Result.Subject != tool.Result.Subject {
		t.Errorf("whoami after refresh = %+v, want %+v", again.Result, tool.Result)
	}
	for _, f := range nc.fetches() {
		if form, _ := url.ParseQuery(f.Body); f.URL == s.issuer+"/oauth2/token" && form.Get("grant_type") == "refresh_token" {
			refreshed = f.Status == 200 && form.Get("resource") == a.resource
		}
	}
	if !refreshed {
		t.Error("no successful refresh with resource=A at Signet's token endpoint")
	}

	// 5. B refuses A's token and names its own metadata; the SDK then asks
	// Signet for a token for B.
	ref := nc.next(t, "refused")
	bMeta := strings.Replace(b.resource, "/mcp", jwks.WellKnownProtectedResource+"/mcp", 1)
	if ref.Status != http.StatusUnauthorized || !strings.HasPrefix(ref.WWWAuth, `Bearer error="invalid_token"`) ||
		!strings.Contains(ref.WWWAuth, `resource_metadata="`+bMeta+`"`) {
		t.Errorf("B answered A's token with %d %q, want 401 invalid_token with resource_metadata=%s", ref.Status, ref.WWWAuth, bMeta)
	}
	re := nc.next(t, "authorize")
	if ru, err := url.Parse(re.URL); err != nil || ru.Query().Get("resource") != b.resource {
		t.Errorf("the SDK's authorization URL for B = %s, want resource=%s", re.URL, b.resource)
	}
	nc.next(t, "done")
	var log []string
	for _, f := range nc.fetches() {
		log = append(log, fmt.Sprintf("%s %s %d", f.Method, f.URL, f.Status))
	}
	t.Logf("the SDK's requests:\n%s", strings.Join(log, "\n"))
	return tool.Result.ClientID
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects a child process's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// jwtPayload decodes a JWT's claims without verifying them, for messages.
func jwtPayload(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
