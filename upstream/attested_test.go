package upstream

import (
	"slices"
	"testing"
	"time"
)

// TestAttested: the factors a provider's amr gives: registered RFC 8176
// values once each, in the provider's order, marked as the provider's
// and trusted only when it is; anything else, and a malformed claim,
// gives nothing.
func TestAttested(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rows := []struct {
		payload string
		want    []string
	}{
		{`{"sub":"u"}`, nil},
		{`{"amr":null}`, nil},
		{`{"amr":[]}`, nil},
		{`{"amr":"pwd"}`, nil}, // not an array
		{`{"amr":["pwd"]}`, []string{"pwd"}},
		{`{"amr":["pwd","otp","mfa"]}`, []string{"pwd", "otp", "mfa"}},
		{`{"amr":["PWD","password","x-custom","pwd",7,{"m":"otp"},null,"otp ","hwk","pwd"]}`, []string{"pwd", "hwk"}},
		{`{"amr":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","pwd"]}`, nil}, // past the first 16
		{`not json`, nil},
	}
	for _, trusted := range []bool{false, true} {
		p := &Provider{ID: "corp", TrustAMR: trusted}
		for _, r := range rows {
			got := attested(p, []byte(r.payload), now)
			var methods []string
			for _, f := range got {
				if f.Upstream != "corp" || f.Trusted != trusted || f.At != now.Unix() {
					t.Errorf("%s: factor %+v: want upstream corp, trusted %v, at now", r.payload, f, trusted)
				}
				methods = append(methods, f.Method)
			}
			if !slices.Equal(methods, r.want) {
				t.Errorf("%s: methods %v, want %v", r.payload, methods, r.want)
			}
		}
	}
}
