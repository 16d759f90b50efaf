package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// deployment is a running Signet: one `signet serve` on bolt, or replicas
// over one etcd cluster.
type deployment struct {
	name     string
	issuer   string
	urls     []string // one base URL per replica
	replicas []*proc
	etcd     *etcdCluster // nil on bolt
	secrets  map[string]string
	browser  *http.Client // keeps the SSO session cookie of user alice
	verifier string       // PKCE code verifier of every authorization request
}

// Clients and the user every deployment gets.
const (
	webClient   = "web"
	redirectURI = "http://127.0.0.1:9/cb"
	userName    = "alice"
	userPass    = "load-test password 42"
	audience    = "api"
)

func ccClient(alg string) string { return "cc-" + alg }

// deployOptions are the settings that differ between the benchmark and the soak.
type deployOptions struct {
	replicas int
	etcd     *etcdCluster
	algs     string   // keys.algorithms
	rotation string   // keys.rotation.schedule; empty: the default
	purge    string   // keys.purge.schedule; empty: the default
	maxAge   string   // jwks.max_age; empty: the default
	custody  string   // YAML under keys.custody (indented four spaces); empty: keys in the store
	env      []string // more environment of the replicas (SOFTHSM2_CONF, SIGNET_PKCS11_PIN)
	extra    string   // more top-level YAML sections (flows: dynamic_clients, outbound, federation)
	// populate runs after the standard clients and user are made, offline
	// on bolt (the flows' own clients).
	populate func(ctx context.Context, d *deployment, cfg string) error
}

// deploy writes the configs, creates the clients and the user offline and
// starts the replicas, waiting until each is ready.
func (l *lab) deploy(ctx context.Context, name string, o deployOptions) (*deployment, error) {
	d := &deployment{name: name, secrets: map[string]string{}}
	var cfgs []string
	var addrs []string
	for range max(o.replicas, 1) {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
		d.urls = append(d.urls, "http://"+a)
	}
	d.issuer = d.urls[0]
	for i, a := range addrs {
		dir := filepath.Join(l.dir, name, fmt.Sprintf("r%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf("issuer: %s\ndata_dir: %s\nhttp:\n  addr: %s\nkeys:\n  algorithms: [%s]\nlogin:\n  code_ttl: 10m\naudit:\n  replica: r%d\n",
			d.issuer, filepath.Join(dir, "data"), a, o.algs, i)
		if o.purge != "" {
			cfg = strings.Replace(cfg, "keys:\n", fmt.Sprintf("keys:\n  purge:\n    schedule: %q\n", o.purge), 1)
		}
		if o.rotation != "" {
			cfg = strings.Replace(cfg, "keys:\n", fmt.Sprintf("keys:\n  rotation:\n    schedule: %q\n", o.rotation), 1)
		}
		if o.custody != "" {
			cfg = strings.Replace(cfg, "keys:\n", "keys:\n  custody:\n"+o.custody, 1)
		}
		if o.maxAge != "" {
			cfg += "jwks:\n  max_age: " + o.maxAge + "\n"
		}
		cfg += o.extra
		if o.etcd != nil {
			cfg += fmt.Sprintf("storage:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: signet/\n", strings.Join(o.etcd.clients, ", "))
		}
		path := filepath.Join(dir, "signet.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		cfgs = append(cfgs, path)
		d.replicas = append(d.replicas, l.add(newProc(fmt.Sprintf("%s r%d", name, i), filepath.Join(dir, "serve.log"), l.signet,
			append([]string{"SIGNET_KEK=" + l.kek}, o.env...), "serve", "--config", path)))
	}
	d.etcd = o.etcd
	// bolt: the offline commands need the file before the server locks it;
	// etcd: the first replica sets up the empty store, then the commands run beside it.
	if o.etcd != nil {
		if err := d.startReplica(ctx, 0); err != nil {
			return nil, err
		}
	}
	if err := l.populate(ctx, d, cfgs[0], o.algs); err != nil {
		return nil, err
	}
	if o.populate != nil {
		if err := o.populate(ctx, d, cfgs[0]); err != nil {
			return nil, err
		}
	}
	for i := range d.replicas {
		if d.replicas[i].running() {
			continue
		}
		if err := d.startReplica(ctx, i); err != nil {
			return nil, err
		}
	}
	return d, d.login(ctx)
}

// startReplica starts replica i and waits for /readyz.
func (d *deployment) startReplica(ctx context.Context, i int) error {
	if err := d.replicas[i].start(); err != nil {
		return err
	}
	return waitOK(ctx, d.replicas[i], d.urls[i]+"/readyz", 60*time.Second)
}

// populate creates one client_credentials client per algorithm (allowed to
// introspect), the browser client "web" and the user alice.
func (l *lab) populate(ctx context.Context, d *deployment, cfg, algs string) error {
	for _, alg := range strings.Split(algs, ", ") {
		s, err := l.createClient(ctx, cfg, "--id", ccClient(alg), "--grant", "client_credentials", "--alg", alg,
			"--scope", "read", "--audience", audience, "--introspect")
		if err != nil {
			return err
		}
		d.secrets[ccClient(alg)] = s
	}
	s, err := l.createClient(ctx, cfg, "--id", webClient, "--grant", "authorization_code", "--grant", "refresh_token",
		"--alg", "ES256", "--id-token-alg", "ES256", "--scope", "openid offline_access read", "--default-scope", "openid read",
		"--audience", audience, "--redirect-uri", redirectURI, "--first-party")
	if err != nil {
		return err
	}
	d.secrets[webClient] = s
	_, err = l.signetCmd(ctx, userPass+"\n", "users", "create", "--config", cfg, "--username", userName)
	return err
}

var (
	actionRE   = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	hiddenRE   = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	continueRE = regexp.MustCompile(`<a class="button" href="([^"]+)">Continue to the application</a>`)
)

// login signs alice in once through the hosted login page of replica 0;
// the SSO session cookie then lets every authorization request on any
// replica answer with a code at once (the client is first-party: no consent).
func (d *deployment) login(ctx context.Context) error {
	jar, _ := cookiejar.New(nil)
	d.browser = httpClient(64)
	d.browser.Jar = jar
	var v [32]byte
	_, _ = rand.Read(v[:])
	d.verifier = base64.RawURLEncoding.EncodeToString(v[:])
	a, err := want200(do(ctx, d.browser, http.MethodGet, d.authorizeURL(d.urls[0], "openid"), nil, "", ""))
	if err != nil {
		return fmt.Errorf("%s: login page: %w", d.name, err)
	}
	m := actionRE.FindSubmatch(a.body)
	if m == nil {
		return fmt.Errorf("%s: no login form on the authorization page:\n%s", d.name, a.body)
	}
	f := url.Values{"username": {userName}, "password": {userPass}}
	for _, h := range hiddenRE.FindAllSubmatch(a.body, -1) {
		f.Set(string(h[1]), html.UnescapeString(string(h[2])))
	}
	a, err = do(ctx, d.browser, http.MethodPost, d.urls[0]+html.UnescapeString(string(m[1])), f, "", "")
	if err != nil {
		return fmt.Errorf("%s: login: %w", d.name, err)
	}
	if _, err := codeOf(a); err != nil {
		return fmt.Errorf("%s: login: %w", d.name, err)
	}
	return nil
}

func (d *deployment) authorizeURL(base, scope string) string {
	sum := sha256.Sum256([]byte(d.verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {webClient}, "redirect_uri": {redirectURI}, "scope": {scope},
		"state": {"load"}, "nonce": {"load"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	return base + "/oauth2/authorize?" + q.Encode()
}

// codeOf reads the code from a redirect to the client (or a continue page).
func codeOf(a answer) (string, error) {
	loc := a.header.Get("Location")
	if loc == "" {
		if m := continueRE.FindSubmatch(a.body); m != nil {
			loc = html.UnescapeString(string(m[1]))
		}
	}
	u, err := url.Parse(loc)
	if loc == "" || err != nil || u.Query().Get("code") == "" {
		b := a.body
		if len(b) > 300 {
			b = b[:300]
		}
		return "", fmt.Errorf("no code (status %d, Location %q): %s", a.status, loc, b)
	}
	return u.Query().Get("code"), nil
}

// code asks replica base for a code with the SSO session.
func (d *deployment) code(ctx context.Context, base, scope string) (string, error) {
	a, err := do(ctx, d.browser, http.MethodGet, d.authorizeURL(base, scope), nil, "", "")
	if err != nil {
		return "", err
	}
	return codeOf(a)
}

// redeem exchanges a code at replica base.
func (d *deployment) redeem(ctx context.Context, c *http.Client, base, code string) (answer, error) {
	return do(ctx, c, http.MethodPost, base+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {d.verifier}}, webClient, d.secrets[webClient])
}

// refresh uses a refresh token at replica base.
func (d *deployment) refresh(ctx context.Context, c *http.Client, base, rt string) (answer, error) {
	return do(ctx, c, http.MethodPost, base+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}},
		webClient, d.secrets[webClient])
}

// token asks replica base for a client_credentials token of alg.
func (d *deployment) token(ctx context.Context, c *http.Client, base, alg string) (answer, error) {
	return do(ctx, c, http.MethodPost, base+"/oauth2/token", ccForm, ccClient(alg), d.secrets[ccClient(alg)])
}

var ccForm = url.Values{"grant_type": {"client_credentials"}}

// family starts a refresh token family: a code with offline_access, redeemed.
func (d *deployment) family(ctx context.Context, c *http.Client, authorizeAt, redeemAt string) (string, error) {
	code, err := d.code(ctx, authorizeAt, "openid offline_access read")
	if err != nil {
		return "", err
	}
	a, err := want200(d.redeem(ctx, c, redeemAt, code))
	if err != nil {
		return "", err
	}
	rt := a.str("refresh_token")
	if rt == "" {
		return "", fmt.Errorf("no refresh token in %s", a.body)
	}
	return rt, nil
}
