package jwks

import (
	"os/exec"
	"strings"
	"testing"
)

// forbiddenDeps are module path prefixes a service must never get by
// importing the verifier: a web framework it did not choose, Signet's
// storage backends, scheduler and metrics, or any other Signet package.
var forbiddenDeps = []string{
	"github.com/labstack/",
	"go.etcd.io/",
	"github.com/robfig/cron",
	"github.com/prometheus/",
	"github.com/signet-auth/signet/",
}

// TestImports lists every package jwks depends on, tests included (go mod
// tidy in a consumer reads those too), and fails on forbiddenDeps: only the
// standard library, jwx and jwx's own dependencies may appear.
func TestImports(t *testing.T) {
	for _, args := range [][]string{{"list", "-deps", "."}, {"list", "-deps", "-test", "."}} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 10 {
			t.Fatalf("go %s listed only %q", strings.Join(args, " "), lines)
		}
		forbidden := append([]string{"gopkg.in/yaml"}, forbiddenDeps...) // Signet's config format
		for _, line := range lines {
			// With -test a line is "path [variant]"; the path decides.
			dep, _, _ := strings.Cut(line, " ")
			if dep == modulePath || dep == modulePath+".test" || dep == modulePath+"_test" ||
				strings.HasPrefix(dep, modulePath+"/internal/") {
				continue // the package, its tests, and the module's own internals
			}
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("jwks depends on %s (go %s)", dep, strings.Join(args, " "))
				}
			}
		}
	}
}

const modulePath = "github.com/signet-auth/signet/jwks"
