package authority

import (
	"strings"
)

// RFC 6749 §5.2 limits error_description to %x20-21 / %x23-5B / %x5D-7E:
// printable ASCII without the double quote and the backslash. RFC 6750 §3
// puts the same text in a quoted-string of WWW-Authenticate.

// descAllowed reports whether b may appear in an error_description.
func descAllowed(b byte) bool {
	return b >= 0x20 && b <= 0x7e && b != '"' && b != '\\'
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
