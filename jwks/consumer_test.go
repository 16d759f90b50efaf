package jwks

import (
	"os"
	"strings"
	"testing"

	"github.com/signet-auth/signet/jwks/internal/modtest"
)

// TestConsumerModule is what a net/http service sees: a module whose
// main.go is examples/nethttp/main.go, requiring jwks alone, tidied. Its
// go.sum names no echo, bbolt, etcd, cron, prometheus or Signet module, and
// its go directive stays at jwks's minimum instead of Signet's.
func TestConsumerModule(t *testing.T) {
	mainGo, err := os.ReadFile("examples/nethttp/main.go")
	if err != nil {
		t.Fatal(err)
	}
	c := modtest.Tidy(t, "1.25.0", mainGo, map[string]string{modulePath: "."})
	mods := c.Modules()
	if !strings.Contains(c.GoSum, "github.com/lestrrat-go/jwx/v2 ") {
		t.Fatalf("go.sum lacks jwx: the test did not tidy what it should\n%s", c.GoSum)
	}
	for _, m := range mods {
		for _, f := range forbiddenDeps {
			if strings.HasPrefix(m, f) {
				t.Errorf("consumer go.sum lists %s", m)
			}
		}
	}
	if !strings.Contains(c.GoMod, "\ngo 1.25.0\n") {
		t.Errorf("consumer go directive raised:\n%s", c.GoMod)
	}
	t.Logf("consumer go.sum modules: %s", strings.Join(mods, " "))
}
