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
// password alone, or a password and a second factor.
const (
	ACRPassword = "urn:signet:acr:pwd"
	ACRMFA      = "urn:signet:acr:mfa"
)

// Factor is one proof of the user's identity in a session and when (unix
// seconds).
type Factor struct {
	Method string `json:"method"`
	At     int64  `json:"at"`
}

// FactorList is the session's factors; a session stored before factors
// were kept has the password at AuthTime.
func (s *Session) FactorList() []Factor {
	if len(s.Factors) == 0 {
		return []Factor{{Method: MethodPassword, At: s.AuthTime}}
	}
	return s.Factors
}

// HasSecondFactor reports whether a factor beyond the password was used.
func (s *Session) HasSecondFactor() bool {
	return slices.ContainsFunc(s.FactorList(), func(f Factor) bool { return f.Method != MethodPassword })
}

// AMR is the amr claim of the session's logins (RFC 8176): each method
// once, and mfa when there are several.
func (s *Session) AMR() []string {
	var out []string
	for _, f := range s.FactorList() {
		if !slices.Contains(out, f.Method) {
			out = append(out, f.Method)
		}
	}
	if len(out) > 1 {
		out = append(out, MethodMFA)
	}
	return out
}

// ACR is the acr claim of the session.
func (s *Session) ACR() string {
	if s.HasSecondFactor() {
		return ACRMFA
	}
	return ACRPassword
}
