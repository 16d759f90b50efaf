package jwks

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps jwks importable on its own: a microservice that
// imports it must not pull in the rest of Signet or a storage backend
// (DESIGN.md, STYLE.md §2).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const self = "github.com/signet-auth/signet/jwks"
	forbidden := []string{"github.com/signet-auth/signet/", "go.etcd.io/", "github.com/robfig/cron", "gopkg.in/yaml", "github.com/prometheus/"}
	for _, dep := range strings.Fields(string(out)) {
		if dep == self {
			continue
		}
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("jwks depends on %s", dep)
			}
		}
	}
}
