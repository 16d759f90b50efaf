package sessions

import "slices"

// Factor methods, named as the amr claim names them (RFC 8176).
const (
	MethodPassword = "pwd"
	MethodOTP      = "otp"
	// MethodPasskey is a WebAuthn assertion: "swk", a key held by
	// software or hardware the server cannot tell apart (no attestation).
	MethodPasskey = "swk"
	// MethodUser is the local check of its user by the authenticator of a
	// passkey sign-in without a password (WebAuthn user verification,
	// flag UV): a PIN or a biometric, which the server cannot tell apart,
	// so it claims neither "pin" nor a biometric method. With the key it
	// makes two factors, and amr gets "mfa" (docs/login.md).
	MethodUser = "user"
	// MethodMFA is added to amr when more than one factor was used.
	MethodMFA = "mfa"
)

// Authentication context classes (the acr claim and acr_values): a
// password alone, a sign-in at an upstream provider (package upstream)
// whose word does not meet the second-factor requirement, or a first
// factor and a second one.
const (
	ACRPassword = "urn:signet:acr:pwd"
	ACRUpstream = "urn:signet:acr:upstream"
	ACRMFA      = "urn:signet:acr:mfa"
)

// Factor is one proof of the user's identity in a session and when (unix
// seconds).
type Factor struct {
	// Method is an RFC 8176 method; empty for a sign-in at an upstream
	// provider that did not say how its user signed in.
	Method string `json:"method"`
	At     int64  `json:"at"`
	// Upstream is the provider (package upstream) whose ID token said
	// Method; empty for a factor Signet checked itself.
	Upstream string `json:"upstream,omitempty"`
	// Trusted marks the methods of an upstream whose word Signet takes
	// (login.upstreams[].trust_amr): its "mfa" then meets Signet's
	// second-factor requirement. Its other methods meet nothing.
	Trusted bool `json:"trusted,omitempty"`
}

// FactorList is the session's factors; a session stored before factors
// were kept has the password at AuthTime.
func (s *Session) FactorList() []Factor {
	if len(s.Factors) == 0 {
		return []Factor{{Method: MethodPassword, At: s.AuthTime}}
	}
	return s.Factors
}

// HasSecondFactor reports whether the session meets the second-factor
// requirement: a factor Signet checked beyond the password, or a trusted
// upstream's "mfa". What an untrusted upstream says never does.
func (s *Session) HasSecondFactor() bool {
	return slices.ContainsFunc(s.FactorList(), func(f Factor) bool {
		if f.Upstream != "" {
			return f.Trusted && f.Method == MethodMFA
		}
		return f.Method != MethodPassword
	})
}

// AMR is the amr claim of the session's logins (RFC 8176): each method
// once, upstream and Signet's alike; none when nothing names one. mfa is
// added when there were several proofs: the upstream sign-in counts as
// one whatever its methods (an upstream says mfa itself when it used
// several), and each method Signet checked as one more.
func (s *Session) AMR() []string {
	var out, checked []string
	upstream := 0
	for _, f := range s.FactorList() {
		if f.Upstream != "" {
			upstream = 1
		} else if !slices.Contains(checked, f.Method) {
			checked = append(checked, f.Method)
		}
		if f.Method != "" && !slices.Contains(out, f.Method) {
			out = append(out, f.Method)
		}
	}
	if upstream+len(checked) > 1 && !slices.Contains(out, MethodMFA) {
		out = append(out, MethodMFA)
	}
	return out
}

// ACR is the acr claim of the session.
func (s *Session) ACR() string {
	switch {
	case s.HasSecondFactor():
		return ACRMFA
	case slices.ContainsFunc(s.FactorList(), func(f Factor) bool { return f.Upstream != "" }):
		return ACRUpstream
	}
	return ACRPassword
}
