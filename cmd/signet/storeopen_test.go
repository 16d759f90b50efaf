package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestServe_Etcd: signet serve on an embedded etcd, with the CLI working on
// the same store by --config while the server runs: init before, clients
// create during; the server picks the new client up from the watch, issues
// it a token, and serves the key that signed it.
func TestServe_Etcd(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	k := make([]byte, 32)
	rand.Read(k)
	kek := base64.StdEncoding.EncodeToString(k)
	t.Setenv("SIGNET_KEK", kek) // the CLI reads the process environment
	path := writeConfig(t, fmt.Sprintf(`
data_dir: %s
storage:
  backend: etcd
  etcd:
    endpoints: [%s]
    prefix: serve-test/
keys:
  algorithms: [ES256, EdDSA]
`, t.TempDir(), cl.Member(0).Endpoint()))

	if _, _, err := initCmd(t, "--config", path); err != nil {
		t.Fatalf("init on etcd: %v", err)
	}
	c := config.Default()
	if err := config.LoadFile(&c, path); err != nil {
		t.Fatal(err)
	}
	c.HTTP.Addr = "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &signettest.LogBuffer{}
	m := &Main{Config: c, LogOutput: logs, Getenv: func(k string) string {
		if k == "SIGNET_KEK" {
			return kek
		}
		return ""
	}}
	if err := m.Open(t.Context()); err != nil {
		m.Close()
		t.Fatalf("open: %v\nlogs:\n%s", err, logs)
	}
	t.Cleanup(func() { m.Close() })

	out, _, err := clientsCmd(t, "create", "--config", path, "--id", "svc", "--grant", "client_credentials", "--audience", "API")
	if err != nil {
		t.Fatalf("clients create on etcd while serving: %v", err)
	}
	svc := decodeSecret(t, out)
	cc := clientcredentials.Config{ClientID: svc.ClientID, ClientSecret: svc.ClientSecret, TokenURL: m.URL() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	var tok *oauth2.Token
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, err = cc.Token(t.Context())
		if err == nil {
			break
		}
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized || time.Now().After(deadline) {
			t.Fatalf("token for a client created by the CLI: %v\nlogs:\n%s", err, logs)
		}
		time.Sleep(10 * time.Millisecond) // waiting for the watch, bounded by the deadline
	}
	set, _, _ := fetchJWKS(t, m.URL())
	kid := tokenKID(t, tok.AccessToken)
	if _, ok := kids(set)[kid]; !ok {
		t.Fatalf("token signed by %s, not in the JWKS %v", kid, kids(set))
	}
	resp, err := http.Get(m.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), "serve-test/") {
		t.Error("the startup log does not name the etcd store")
	}
}

// TestServe_Etcd_NoKEK: on a shared store Signet never makes up a KEK.
func TestServe_Etcd_NoKEK(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	c := testConfig(t, func(c *config.Config) {
		c.Storage.Backend = "etcd"
		c.Storage.Etcd.Endpoints = cl.Endpoints()
	})
	m := &Main{Config: c, LogOutput: &signettest.LogBuffer{}, Getenv: func(string) string { return "" }}
	err := m.Open(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "every replica needs the same one") {
		t.Fatalf("Open without a KEK on etcd = %v, want a refusal that says why", err)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "kek")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a KEK file was created: %v", err)
	}
}
