package clients

import (
	"fmt"
	"strings"
)

// Validation problems go to the client as an error_description, which RFC
// 6749 §5.2 limits to %x20-21 / %x23-5B / %x5D-7E. users and authority
// name values in their texts with QuoteValue too.

// maxQuoted bounds a value quoted into a problem text: a refusal names
// what it refuses, it does not echo a 64 KiB body.
const maxQuoted = 64

// QuoteValue renders a value (a claim name, a scope, a URI) for a problem
// text: in single quotes, every byte that may not appear in an
// error_description (and the quote itself) as %XX, cut at maxQuoted bytes.
// Use it instead of %q, whose double quotes and backslash escapes RFC 6749
// forbids.
func QuoteValue(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if i == maxQuoted {
			b.WriteString("...")
			break
		}
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '\'' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('\'')
	return b.String()
}
