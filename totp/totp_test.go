package totp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/totp"
)

// RFC 6238 Appendix B, the SHA-1 rows (8 digits there; the last 6 are ours).
func TestRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, row := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	} {
		got := totp.Code(secret, totp.Step(time.Unix(row.unix, 0)))
		if got != row.want[2:] {
			t.Errorf("T=%d: code %s, want %s", row.unix, got, row.want[2:])
		}
	}
}

func TestMatchWindowAndReplay(t *testing.T) {
	secret := totp.NewSecret()
	now := time.Unix(1_800_000_000, 0)
	cur := totp.Step(now)
	for d := int64(-1); d <= 1; d++ {
		code := totp.Code(secret, cur+d)
		step, ok := totp.Match(secret, code, now, 0)
		if !ok || step != cur+d {
			t.Errorf("step %+d: Match = %d, %v; want %d, true", d, step, ok, cur+d)
		}
		if _, ok := totp.Match(secret, code, now, cur+d); ok {
			t.Errorf("step %+d: accepted again after its own step", d)
		}
	}
	for _, d := range []int64{-2, 2} {
		if _, ok := totp.Match(secret, totp.Code(secret, cur+d), now, 0); ok {
			t.Errorf("step %+d: accepted outside the window", d)
		}
	}
	c := totp.Code(secret, cur)
	if _, ok := totp.Match(secret, c[:3]+" "+c[3:], now, 0); !ok {
		t.Error("a code typed with a space was refused")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", strings.Repeat("1", 100)} {
		if _, ok := totp.Match(secret, bad, now, 0); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestURI(t *testing.T) {
	u := totp.URI("Signet", "alice@example", []byte("12345678901234567890"))
	want := "otpauth://totp/Signet:alice@example?algorithm=SHA1&digits=6&issuer=Signet&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	if u != want {
		t.Errorf("URI = %s\nwant %s", u, want)
	}
}
