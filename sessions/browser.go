package sessions

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"strings"
)

// A browser id binds login transactions to one browser (the login
// package's browser cookie). It is made here only: 256 random bits and the
// server's MAC of them, so a value a client or a sibling site chose is
// never adopted (an attacker who knows the binding of the victim's
// browser could complete forms in its name).

// NewBrowserID returns a new browser id.
func (m *Manager) NewBrowserID(ctx context.Context) (string, error) {
	key, err := m.macKey(ctx)
	if err != nil {
		return "", err
	}
	r := NewSecret()
	return r + "." + base64.RawURLEncoding.EncodeToString(mac(key, "browser", r)), nil
}

// ValidBrowserID reports whether v is a browser id this server made.
func (m *Manager) ValidBrowserID(ctx context.Context, v string) (bool, error) {
	r, sig, ok := strings.Cut(v, ".")
	if !ok || len(r) != 43 || len(sig) != 43 {
		return false, nil
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return false, nil
	}
	key, err := m.macKey(ctx)
	if err != nil {
		return false, err
	}
	return hmac.Equal(got, mac(key, "browser", r)), nil
}
