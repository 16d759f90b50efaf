package resource_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/signet-auth/signet/resource"
)

// TestCheck: RFC 8707 §2, an absolute URI (RFC 3986 §4.3) without a
// fragment; the descriptions stay in the RFC 6749 §5.2 alphabet and never
// echo the value.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"https://api.example.com", true},
		{"https://api.example.com/v1/mcp", true},
		{"https://api.example.com/v1?tenant=blue", true},
		{"http://127.0.0.1:8080/mcp", true},
		{"urn:example:payments", true},
		{"", false},
		{"api", false},
		{"/mcp", false},
		{"//api.example.com/mcp", false},
		{"api.example.com/mcp", false},
		{"https://api.example.com#", false},
		{"https://api.example.com/#frag", false},
		{"https:/mcp", false},
		{"https:", false},
		{"urn:", false},
		{"https://api.example.com/a b", false},
		{"https://api.example.com/\x00", false},
		{"https://api.example.com/é", false},
		{"https://[::1", false},
		{"https://api.example.com/" + strings.Repeat("a", resource.MaxLen), false},
	} {
		err := resource.Check(tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok %v", tc.v, err, tc.ok)
		}
		var re *resource.Error
		if err != nil && (!errors.As(err, &re) || re.Code != resource.InvalidTarget || strings.ContainsFunc(re.Description, func(r rune) bool {
			return r < 0x20 || r > 0x7e || r == '"' || r == '\\'
		})) {
			t.Errorf("Check(%q) = %#v, want invalid_target in the RFC 6749 alphabet", tc.v, err)
		}
	}
}

// TestNarrow: never wider than granted, re-checked against the client's
// audiences now.
func TestNarrow(t *testing.T) {
	const a, b, c = "https://a.example", "https://b.example", "https://c.example"
	for _, tc := range []struct {
		name                   string
		granted, want, allowed []string
		out                    []string
		ok                     bool
	}{
		{"none asked: all", []string{a, b}, nil, []string{a, b, c}, []string{a, b}, true},
		{"narrowed", []string{a, b}, []string{b}, []string{a, b, c}, []string{b}, true},
		{"widened", []string{a}, []string{c}, []string{a, b, c}, nil, false},
		{"lost: dropped", []string{a, b}, nil, []string{a}, []string{a}, true},
		{"lost: named", []string{a, b}, []string{b}, []string{a}, nil, false},
		{"all lost", []string{b}, nil, []string{a}, nil, false},
	} {
		out, err := resource.Narrow(tc.granted, tc.want, tc.allowed, "refresh token")
		if (err == nil) != tc.ok || !slices.Equal(out, tc.out) {
			t.Errorf("%s: Narrow = %v, %v; want %v ok %v", tc.name, out, err, tc.out, tc.ok)
		}
	}
}
