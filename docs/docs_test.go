package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
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
	// dpop.md quotes the DPoP service (jwks/examples/dpop).
	text, err := os.ReadFile("dpop.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../jwks/examples/dpop/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "```go\n"+string(src)+"```\n") {
		t.Errorf("dpop.md does not quote jwks/examples/dpop/main.go verbatim: copy the file into its go block")
	}
}

// TestLinks: every relative link in README.md and docs/*.md names a file
// that exists, and every #fragment a heading of its target, so moving a
// section to docs/ cannot leave a dead link behind.
func TestLinks(t *testing.T) {
	docs, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range append([]string{"../README.md"}, docs...) {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
			}
			body, err := os.ReadFile(path)
			if err != nil {
				if info, serr := os.Stat(path); serr == nil && info.IsDir() {
					continue
				}
				t.Errorf("%s: link %s: %v", doc, target, err)
				continue
			}
			if frag != "" && !slices.Contains(anchors(string(body)), frag) {
				t.Errorf("%s: link %s: no heading with that anchor in %s", doc, target, path)
			}
		}
	}
}

// anchors returns the GitHub anchors of a Markdown text's headings.
func anchors(md string) []string {
	var out []string
	inCode := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestQuotedKeyJWTExample: docs/private-key-jwt.md quotes the Authlib
// example verbatim, so the program a reader copies is the one
// interop/run.sh runs against a real Signet.
func TestQuotedKeyJWTExample(t *testing.T) {
	doc, err := os.ReadFile("private-key-jwt.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../interop/python/private_key_jwt.py")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```python\n"+string(src)+"```\n") {
		t.Error("docs/private-key-jwt.md does not quote interop/python/private_key_jwt.py verbatim: copy the file into its python block")
	}
}
