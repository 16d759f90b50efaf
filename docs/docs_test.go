package docs

import (
	"os"
	"strings"
	"testing"
)

// TestQuotedPrograms: the README and docs/verifying-tokens.md quote the
// example services of the jwks modules verbatim, so the code a service
// author copies is the code CI compiles and runs (jwks/examples/nethttp,
// jwks/echojwt/examples/echo, each with a test against an issuer).
func TestQuotedPrograms(t *testing.T) {
	programs := []string{"../jwks/examples/nethttp/main.go", "../jwks/echojwt/examples/echo/main.go"}
	for _, doc := range []string{"../README.md", "verifying-tokens.md"} {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range programs {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(text), "```go\n"+string(src)+"```\n") {
				t.Errorf("%s does not quote %s verbatim: copy the file into its go block", doc, p)
			}
		}
	}
}
