package clientauth

import (
	"strings"
	"testing"
)

// FuzzParseCompact: the strict parser never panics, and what it accepts is
// three canonical base64url parts whose signing input is the text received.
func FuzzParseCompact(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJhIn0.c2ln",
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJhIn0.",
		"eyJhbGciOiJFUzI1NiIsImNyaXQiOlsiZXhwIl19.eyJleHAiOjF9.c2ln",
		"e30.e30.e30", "...", "a.b.c.d", "eyJhbGciOiJFUzI1NiJ9=.eyJpc3MiOiJhIn0.c2ln",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := parseCompact(s)
		if err != nil {
			return
		}
		parts := strings.Split(s, ".")
		if len(parts) != 3 || string(j.input) != parts[0]+"."+parts[1] {
			t.Fatalf("accepted %q with signing input %q", s, j.input)
		}
		for _, p := range parts {
			if b, err := strictB64.DecodeString(p); err != nil || len(b) == 0 || strictB64.EncodeToString(b) != p {
				t.Fatalf("accepted a non-canonical part %q", p)
			}
		}
	})
}

func TestAudiences(t *testing.T) {
	for in, want := range map[string]int{`"a"`: 1, `["a","b"]`: 2, `3`: 0, `{"a":1}`: 0, `null`: 1} {
		if got := audiences([]byte(in)); len(got) != want {
			t.Errorf("audiences(%s) = %v, want %d values", in, got, want)
		}
	}
}
