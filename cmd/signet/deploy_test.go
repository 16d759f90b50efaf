package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/signet-auth/signet/config"
)

// TestDeployCompose checks deploy/compose.yaml without a Docker engine:
// every Signet replica gets the same issuer, the same KEK and the client
// URL of every etcd member, under its own replica name, with the etcd
// backend; and nginx balances over every replica.
func TestDeployCompose(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var etcdURLs, replicas []string
	for name, svc := range doc.Services {
		if strings.HasPrefix(name, "etcd") {
			for _, arg := range svc.Command {
				if u, ok := strings.CutPrefix(arg, "--advertise-client-urls="); ok {
					etcdURLs = append(etcdURLs, u)
				}
			}
		}
		if svc.Environment["SIGNET_STORAGE_BACKEND"] != "" || strings.HasPrefix(name, "signet") {
			replicas = append(replicas, name)
		}
	}
	slices.Sort(etcdURLs)
	slices.Sort(replicas)
	if len(etcdURLs) != 3 || len(replicas) != 3 {
		t.Fatalf("want three etcd members and three replicas, got %v and %v", etcdURLs, replicas)
	}
	first := doc.Services[replicas[0]].Environment
	names := map[string]bool{}
	for _, r := range replicas {
		env := doc.Services[r].Environment
		for _, k := range []string{"SIGNET_ISSUER", "SIGNET_KEK", "SIGNET_STORAGE_ETCD_PREFIX"} {
			if env[k] == "" || env[k] != first[k] {
				t.Errorf("%s: %s = %q, want %q as on %s", r, k, env[k], first[k], replicas[0])
			}
		}
		if env["SIGNET_STORAGE_BACKEND"] != "etcd" {
			t.Errorf("%s: SIGNET_STORAGE_BACKEND = %q, want etcd", r, env["SIGNET_STORAGE_BACKEND"])
		}
		eps := config.SplitList(env["SIGNET_STORAGE_ETCD_ENDPOINTS"])
		slices.Sort(eps)
		if !slices.Equal(eps, etcdURLs) {
			t.Errorf("%s: etcd endpoints %v, want every member %v", r, eps, etcdURLs)
		}
		name := env["SIGNET_AUDIT_REPLICA"]
		if name == "" || names[name] {
			t.Errorf("%s: replica name %q empty or shared", r, name)
		}
		names[name] = true
	}

	conf, err := os.ReadFile("../../deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range replicas {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^\s*server %s:8080\b`, regexp.QuoteMeta(r))).Match(conf) {
			t.Errorf("nginx.conf does not balance over %s", r)
		}
	}
}
