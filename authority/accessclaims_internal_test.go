package authority

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestAccessClaims_AppendJSON: the claims the token endpoint encodes by
// appending are byte for byte what json.Marshal makes of them, for
// strings that need escaping (quotes, control characters, HTML-unsafe
// characters, U+2028, invalid UTF-8, non-ASCII), one, several and no
// audiences, and the optional members present and absent.
func TestAccessClaims_AppendJSON(t *testing.T) {
	strs := []string{"", "plain", `q"uote`, `back\slash`, "tab\tnew\nline\x01", "<script>&", "caf\u00e9 \u2028 \U0001F600", "bad \xff utf8", "~!@#$%^*()_+{}|:?`-=[];',./"}
	var cases []accessClaims
	for i, s := range strs {
		cases = append(cases,
			accessClaims{Iss: s, Sub: s, Aud: audience{s}, Exp: int64(i) * 1e9, Nbf: -1, Iat: 0, Jti: s, ClientID: s, Scope: s, Instance: s},
			accessClaims{Iss: "https://i", Sub: "x", Aud: audience{s, "b", s}, Exp: 1, Jti: "j", ClientID: "c", Scope: s},
		)
	}
	cases = append(cases, accessClaims{Iss: "i", Sub: "s"}, accessClaims{Aud: audience{}})
	for _, c := range cases {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("appendJSON:\n got %s\nwant %s", got, want)
		}
	}
}
