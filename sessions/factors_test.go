package sessions_test

import (
	"slices"
	"testing"

	"github.com/signet-auth/signet/sessions"
)

// TestSession_AMR_ACR: what the ID token says of each kind of session,
// and whether it meets the second-factor requirement. What an upstream
// says is shown, but meets the requirement only from a trusted upstream;
// an upstream that says nothing adds no method, and is never a password.
func TestSession_AMR_ACR(t *testing.T) {
	pwd := sessions.Factor{Method: sessions.MethodPassword, At: 10}
	otp := sessions.Factor{Method: sessions.MethodOTP, At: 20}
	up := func(m string, trusted bool) sessions.Factor {
		return sessions.Factor{Method: m, At: 10, Upstream: "corp", Trusted: trusted}
	}
	rows := []struct {
		name    string
		factors []sessions.Factor
		amr     []string
		acr     string
		second  bool
	}{
		{"stored before factors were kept", nil, []string{"pwd"}, sessions.ACRPassword, false},
		{"password", []sessions.Factor{pwd}, []string{"pwd"}, sessions.ACRPassword, false},
		{"password and code", []sessions.Factor{pwd, otp}, []string{"pwd", "otp", "mfa"}, sessions.ACRMFA, true},
		{"passwordless passkey", []sessions.Factor{{Method: "swk", At: 1}, {Method: "user", At: 1}}, []string{"swk", "user", "mfa"}, sessions.ACRMFA, true},
		{"upstream said nothing", []sessions.Factor{up("", false)}, nil, sessions.ACRUpstream, false},
		{"upstream said pwd", []sessions.Factor{up("pwd", false)}, []string{"pwd"}, sessions.ACRUpstream, false},
		{"upstream said pwd otp, no mfa", []sessions.Factor{up("pwd", false), up("otp", false)}, []string{"pwd", "otp"}, sessions.ACRUpstream, false},
		{"untrusted upstream mfa", []sessions.Factor{up("pwd", false), up("otp", false), up("mfa", false)}, []string{"pwd", "otp", "mfa"}, sessions.ACRUpstream, false},
		{"trusted upstream mfa", []sessions.Factor{up("pwd", true), up("otp", true), up("mfa", true)}, []string{"pwd", "otp", "mfa"}, sessions.ACRMFA, true},
		{"trusted upstream without mfa", []sessions.Factor{up("pwd", true), up("otp", true)}, []string{"pwd", "otp"}, sessions.ACRUpstream, false},
		{"upstream said nothing, then Signet's code", []sessions.Factor{up("", false), otp}, []string{"otp", "mfa"}, sessions.ACRMFA, true},
		{"untrusted upstream mfa, then Signet's code", []sessions.Factor{up("pwd", false), up("otp", false), up("mfa", false), otp}, []string{"pwd", "otp", "mfa"}, sessions.ACRMFA, true},
		{"upstream pwd, then Signet's passkey", []sessions.Factor{up("pwd", false), {Method: "swk", At: 30}}, []string{"pwd", "swk", "mfa"}, sessions.ACRMFA, true},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			s := sessions.Session{AuthTime: 10, Factors: r.factors}
			if got := s.AMR(); !slices.Equal(got, r.amr) {
				t.Errorf("AMR = %v, want %v", got, r.amr)
			}
			if got := s.ACR(); got != r.acr {
				t.Errorf("ACR = %q, want %q", got, r.acr)
			}
			if got := s.HasSecondFactor(); got != r.second {
				t.Errorf("HasSecondFactor = %v, want %v", got, r.second)
			}
		})
	}
}
