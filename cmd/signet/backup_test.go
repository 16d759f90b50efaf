package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storeopen"
)

// issueToken gets a client_credentials token at base.
func issueToken(ctx context.Context, base, id, secret string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"signet:admin"}, "audience": {"signet-admin"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.AccessToken == "" {
		return "", fmt.Errorf("token: %d %s", resp.StatusCode, b)
	}
	return out.AccessToken, nil
}

func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestBackup_OnlineUnderLoadAndRestore: a real server issues tokens to four
// goroutines and rotates its keys; an online backup is taken mid-load. A
// server started on the restored data dir verifies (jwks.Verifier) every
// token issued before the backup started, and none signed by a key made
// after it.
func TestBackup_OnlineUnderLoadAndRestore(t *testing.T) {
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	edit := func(c *config.Config) {
		c.Keys.Algorithms = []string{"ES256"}
		c.HTTP.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		c.Issuer = issuer
	}
	c := testConfig(t, edit)
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	m, _ := startMain(t, c, nil)
	ctx := t.Context()

	var (
		mu     sync.Mutex
		tokens []string
		issued = make(chan struct{}, 1024)
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		errs   = make(chan error, 4)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := issueToken(ctx, m.URL(), admin.ClientID, admin.ClientSecret)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				tokens = append(tokens, tok)
				mu.Unlock()
				select {
				case issued <- struct{}{}:
				default:
				}
			}
		}()
	}
	// waitTokens returns once n more tokens than now have been issued.
	waitTokens := func(n int) {
		t.Helper()
		mu.Lock()
		target := len(tokens) + n
		mu.Unlock()
		for {
			mu.Lock()
			done := len(tokens) >= target
			mu.Unlock()
			if done {
				return
			}
			select {
			case <-issued:
			case err := <-errs:
				t.Fatal(err)
			}
		}
	}
	waitTokens(20)
	if err := m.Keys.Rotate(ctx, true); err != nil { // two keys sign during the load
		t.Fatal(err)
	}
	waitTokens(20)

	mu.Lock()
	before := len(tokens) // every one of these was answered before the backup began
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "online.signet-backup")
	if stdout, stderr, code := runCmd(t, "backup", "--out", file, "--server", m.URL()); code != 0 || !strings.Contains(stdout, "backup written") {
		t.Fatalf("online backup: code %d\n%s%s", code, stdout, stderr)
	}
	waitTokens(20)
	// Two rotations after the backup: the second activates a key the backup never saw.
	for range 2 {
		if err := m.Keys.Rotate(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	waitTokens(10)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	after, _ := issueToken(ctx, m.URL(), admin.ClientID, admin.ClientSecret)
	m.Close()

	kek, _ := os.ReadFile(c.KEKPath())
	dk, _ := keksource.Decode(string(kek))
	h, err := backup.Verify(ctx, file, t.TempDir(), dk)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != backup.KindBolt || h.SignetVersion != readBuildInfo().Version || h.SchemaVersion != 1 || !backup.MatchKEK(h.KEKFingerprint, dk) {
		t.Errorf("header = %+v", h)
	}

	// Restore into a new data dir that has the KEK file.
	restored := testConfig(t, edit)
	if err := os.WriteFile(restored.KEKPath(), kek, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCmd(t, "restore", "--from", file, "--data-dir", restored.DataDir)
	if code != 0 || !strings.Contains(stdout, "BEFORE SERVING") {
		t.Fatalf("restore: code %d\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := runCmd(t, "restore", "--from", file, "--data-dir", restored.DataDir); code == 0 || !strings.Contains(stderr, "--force") {
		t.Errorf("restore over a store with data: code %d: %s", code, stderr)
	}

	m2, _ := startMain(t, restored, nil)
	v, err := jwks.NewVerifier(ctx, issuer, jwks.WithAudience("signet-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	kidsSeen := map[string]bool{}
	for i, tok := range tokens[:before] {
		kidsSeen[tokenKID(t, tok)] = true
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("token %d of %d issued before the backup does not verify on the restored server: %v", i, before, err)
		}
	}
	if len(kidsSeen) != 2 {
		t.Errorf("tokens before the backup were signed by %d keys, want 2 (one rotation)", len(kidsSeen))
	}
	if _, err := v.Verify(ctx, after); err == nil {
		t.Error("a token signed by a key made after the backup verifies on the restored server")
	}
	// The restored server serves: it issues tokens that verify.
	tok, err := issueToken(ctx, m2.URL(), admin.ClientID, admin.ClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("token of the restored server: %v", err)
	}
}

// TestRestore_OverCurrentStore: restoring an older backup over the store it
// came from keeps a key revoked since revoked (with the pending key
// promoted), reports the client deleted since, refuses a wrong KEK, and
// keeps the replaced store.
func TestRestore_OverCurrentStore(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	m, _ := startMain(t, c, nil)
	if _, _, err := m.Server.Clients().Create(t.Context(), clientSpec("svc")); err != nil {
		t.Fatal(err)
	}
	active, _ := m.Keys.SigningKey("ES256")
	m.Close()

	file := filepath.Join(t.TempDir(), "offline.signet-backup")
	if stdout, stderr, code := runCmd(t, "backup", "--out", file, "--data-dir", c.DataDir); code != 0 {
		t.Fatalf("offline backup: code %d\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := runCmd(t, "backup", "--out", file, "--data-dir", c.DataDir); code == 0 || !strings.Contains(stderr, "exists") {
		t.Errorf("backup over an existing file: code %d: %s", code, stderr)
	}
	// After the backup: the active key is revoked, the client deleted.
	if _, stderr, code := runCmd(t, "keys", "revoke", "--data-dir", c.DataDir, active.KeyID()); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := runCmd(t, "clients", "delete", "svc", "--data-dir", c.DataDir); code != 0 {
		t.Fatal(stderr)
	}

	// A wrong KEK is refused before anything is touched.
	t.Setenv("SIGNET_KEK", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if _, stderr, code := runCmd(t, "restore", "--from", file, "--data-dir", c.DataDir, "--force"); code == 0 || !strings.Contains(stderr, "backup authentication failed") {
		t.Errorf("wrong KEK: code %d: %s", code, stderr)
	}
	t.Setenv("SIGNET_KEK", "")

	stdout, stderr, code := runCmd(t, "restore", "--from", file, "--data-dir", c.DataDir, "--force")
	if code != 0 {
		t.Fatalf("restore --force: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"revoked again", active.KeyID(), "clients deleted since the backup, back: svc", "kept as"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("restore report lacks %q:\n%s", want, stdout)
		}
	}
	st, err := storeopen.OpenBolt(c.BoltPath(), 0)
	if err != nil {
		t.Fatal(err)
	}
	infos, _ := keys.List(t.Context(), st)
	st.Close()
	activeN := 0
	for _, k := range infos {
		if k.KID == active.KeyID() && k.State != keys.StateRevoked {
			t.Errorf("key revoked after the backup is %s after restore", k.State)
		}
		if k.State == keys.StateActive {
			activeN++
		}
	}
	if activeN != 1 {
		t.Errorf("%d active keys after restore", activeN)
	}
	p := auditCmd(t, "--data-dir", c.DataDir, "--action", "store.restore")
	if len(p.Events) != 1 || p.Events[0].Actor != "cli" || !strings.Contains(p.Events[0].Detail, active.KeyID()) {
		t.Errorf("restore audit = %+v", p.Events)
	}
	kept, _ := filepath.Glob(c.BoltPath() + ".before-restore-*")
	if len(kept) != 1 {
		t.Errorf("replaced store kept as %v", kept)
	}
}

func clientSpec(id string) clients.Client {
	return clients.Client{ID: id, Scopes: []string{"read"}, Audiences: []string{"api"}}
}

// TestBackup_AdminRoute: GET /admin/backup needs an admin token, is never
// cached, and is an audit event.
func TestBackup_AdminRoute(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	m, _ := startMain(t, c, nil)
	resp, err := http.Get(m.URL() + "/admin/backup")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	cc := clientcredentials.Config{ClientID: admin.ClientID, ClientSecret: admin.ClientSecret, TokenURL: m.URL() + "/oauth2/token",
		Scopes: []string{authority.AdminScope}, EndpointParams: url.Values{"audience": {authority.AdminAudience}}}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, m.URL()+"/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || !bytes.HasPrefix(body, []byte("signet-backup\n")) {
		t.Errorf("backup = %d, Cache-Control %q, body starts %q", resp.StatusCode, resp.Header.Get("Cache-Control"), body[:min(len(body), 20)])
	}
	p := auditCmd(t, "--server", m.URL(), "--action", "store.backup")
	if len(p.Events) != 1 || p.Events[0].Actor != admin.ClientID || !strings.Contains(p.Events[0].Detail, fmt.Sprintf("bytes=%d", len(body))) {
		t.Errorf("backup audit = %+v", p.Events)
	}
}
