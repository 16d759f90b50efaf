package authority

import (
	"fmt"
	"strings"
)

// RFC 6749 §5.2 limits error_description to %x20-21 / %x23-5B / %x5D-7E:
// printable ASCII without the double quote and the backslash. RFC 6750 §3
// puts the same text in a quoted-string of WWW-Authenticate.

// descAllowed reports whether b may appear in an error_description.
func descAllowed(b byte) bool {
	return b >= 0x20 && b <= 0x7e && b != '"' && b != '\\'
}

// maxQuoted bounds a value quoted into an error text: a refusal names what
// it refuses, it does not echo a 64 KiB body.
const maxQuoted = 64

// quoteValue renders a request value (a claim name, a scope, an audience)
// for an error text: in single quotes, every byte that may not appear in
// an error_description (and the quote itself) as %XX, cut at maxQuoted
// bytes. Use it instead of %q, whose double quotes and backslash escapes
// RFC 6749 forbids.
func quoteValue(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if i == maxQuoted {
			b.WriteString("...")
			break
		}
		c := s[i]
		if !descAllowed(c) || c == '\'' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('\'')
	return b.String()
}

// descText makes s a valid error_description: the double quote becomes a
// single quote and any other byte outside the allowed set a '?'. Every
// description passes through it on the way out, so text that comes from a
// library (a JSON decoder's message) cannot break the rule.
func descText(s string) string {
	for i := 0; i < len(s); i++ {
		if !descAllowed(s[i]) {
			return strings.Map(func(r rune) rune {
				switch {
				case r == '"':
					return '\''
				case r < 0x80 && descAllowed(byte(r)):
					return r
				}
				return '?'
			}, s)
		}
	}
	return s
}
