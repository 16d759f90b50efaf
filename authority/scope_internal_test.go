package authority

import (
	"slices"
	"testing"
)

// TestParseScope: RFC 6749 §3.3, scope = scope-token *( SP scope-token ),
// scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Only one space separates
// tokens; every other kind of white space, and every character outside
// the token set, is malformed.
func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil with ok false: malformed
		ok   bool
	}{
		{"", nil, true},
		{"read", []string{"read"}, true},
		{"read write", []string{"read", "write"}, true},
		{"read write read", []string{"read", "write"}, true},
		{"signet:admin a/b!#$%&'()*+,-./:;<=>?@[]^_`{|}~", []string{"signet:admin", "a/b!#$%&'()*+,-./:;<=>?@[]^_`{|}~"}, true},
		// separators other than one SP
		{"read\twrite", nil, false},
		{"read\nwrite", nil, false},
		{"read\rwrite", nil, false},
		{"read\vwrite", nil, false},
		{"read\fwrite", nil, false},
		{"read\u00a0write", nil, false}, // NBSP
		{"read\u2003write", nil, false}, // EM SPACE
		{"read\u0085write", nil, false}, // NEL
		{"read\u3000write", nil, false},
		{"read  write", nil, false},
		{" read", nil, false},
		{"read ", nil, false},
		{" ", nil, false},
		// characters outside scope-token
		{`re"ad`, nil, false},
		{`re\ad`, nil, false},
		{"re\x00ad", nil, false},
		{"re\x7fad", nil, false},
		{"r\u00e9ad", nil, false},
		{"read\xff", nil, false},
	} {
		got, err := parseScope(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("parseScope(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil {
			if d := err.Description; !descOK(d) || err.Code != "invalid_scope" {
				t.Errorf("parseScope(%q) error %s %q", tc.in, err.Code, d)
			}
		}
	}
}

func descOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if !descAllowed(s[i]) {
			return false
		}
	}
	return s != ""
}
