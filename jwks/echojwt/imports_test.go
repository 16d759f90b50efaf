package echojwt

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/signet-auth/signet/jwks/internal/modtest"
)

const (
	modulePath = "github.com/signet-auth/signet/jwks/echojwt"
	jwksPath   = "github.com/signet-auth/signet/jwks"
)

// forbiddenDeps are what an echo service must not get through echojwt:
// Signet's storage backends, scheduler and metrics, or any Signet package
// but jwks.
var forbiddenDeps = []string{"go.etcd.io/", "github.com/robfig/cron", "github.com/prometheus/", "github.com/signet-auth/signet/"}

// TestImports lists every package echojwt depends on, tests included, and
// fails on forbiddenDeps (echo and jwks are what it is for).
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
		for _, line := range lines {
			dep, _, _ := strings.Cut(line, " ") // "path [variant]" with -test
			if dep == jwksPath || strings.HasPrefix(dep, jwksPath+"/internal/") ||
				dep == modulePath || dep == modulePath+".test" || dep == modulePath+"_test" {
				continue
			}
			for _, f := range forbiddenDeps {
				if strings.HasPrefix(dep, f) {
					t.Errorf("echojwt depends on %s (go %s)", dep, strings.Join(args, " "))
				}
			}
		}
	}
}

// TestConsumerModule is what an echo service sees: a module whose main.go
// is examples/echo/main.go, tidied. Its go.sum has echo and jwx, and no
// bbolt, etcd, cron, prometheus or Signet module.
func TestConsumerModule(t *testing.T) {
	mainGo, err := os.ReadFile("examples/echo/main.go")
	if err != nil {
		t.Fatal(err)
	}
	c := modtest.Tidy(t, "1.25.0", mainGo, map[string]string{modulePath: ".", jwksPath: ".."})
	for _, want := range []string{"github.com/labstack/echo/v4 ", "github.com/lestrrat-go/jwx/v2 "} {
		if !strings.Contains(c.GoSum, want) {
			t.Fatalf("go.sum lacks %s: the test did not tidy what it should\n%s", want, c.GoSum)
		}
	}
	for _, m := range c.Modules() {
		for _, f := range forbiddenDeps {
			if strings.HasPrefix(m, f) {
				t.Errorf("consumer go.sum lists %s", m)
			}
		}
	}
	if !strings.Contains(c.GoMod, "\ngo 1.25.0\n") {
		t.Errorf("consumer go directive raised:\n%s", c.GoMod)
	}
	t.Logf("consumer go.sum modules: %s", strings.Join(c.Modules(), " "))
}
