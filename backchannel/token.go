package backchannel

import "time"

// LogoutClaims are the claims of a logout token (§2.4), in order. There is
// no nonce member: a logout token must never carry one (§2.4), and one
// that cannot be set cannot be sent. Events is always present.
type LogoutClaims struct {
	Iss    string              `json:"iss"`
	Sub    string              `json:"sub,omitempty"`
	Aud    string              `json:"aud"`
	Iat    int64               `json:"iat"`
	Exp    int64               `json:"exp"`
	JTI    string              `json:"jti"`
	SID    string              `json:"sid,omitempty"`
	Events map[string]struct{} `json:"events"`
}

// Claims are the logout token claims of e, issued now for ttl: sub and sid
// both (a client that requires sid gets it; one that keys its sessions by
// sub finds them too).
func Claims(issuer string, e *Entry, now time.Time, ttl time.Duration) LogoutClaims {
	return LogoutClaims{Iss: issuer, Sub: e.Sub, Aud: e.ClientID, Iat: now.Unix(), Exp: now.Add(ttl).Unix(), JTI: e.JTI, SID: e.SID,
		Events: map[string]struct{}{EventType: {}}}
}
