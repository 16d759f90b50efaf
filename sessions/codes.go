package sessions

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/signet-auth/signet/storage"
)

// Code is an authorization code as stored (under the hash of its value):
// everything the token endpoint must check and carry into the tokens.
type Code struct {
	ClientID string `json:"client_id"`
	// ClientInstance is the instance of the client the code was issued
	// to: a client deleted and recreated with the same id cannot redeem
	// the old one's codes.
	ClientInstance string `json:"client_instance,omitempty"`
	// RedirectURI is the URI the code was sent to; RedirectGiven says the
	// request named it (then the token request must repeat it).
	RedirectURI   string `json:"redirect_uri"`
	RedirectGiven bool   `json:"redirect_given,omitempty"`
	// Challenge is the S256 PKCE code_challenge ("" when none was sent).
	Challenge string `json:"challenge,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
	Scope     string `json:"scope"`
	// Resources are the RFC 8707 resources the request named, each one of
	// the client's audiences; none means the client's default audience.
	Resources []string `json:"resources,omitempty"`
	UserID    string   `json:"user_id"`
	SID       string   `json:"sid"`
	// Session is the storage key of the SSO session that issued the code:
	// a code whose session ended (logout, force logout) is refused.
	Session string `json:"session"`
	// Offline says the user allowed the client to keep access while away
	// (refresh tokens): the client is first party, or the consent page
	// said so and the user allowed it.
	Offline   bool  `json:"offline,omitempty"`
	AuthTime  int64 `json:"auth_time"`  // unix seconds
	ExpiresAt int64 `json:"expires_at"` // unix nanoseconds
	// DPoPJKT is the dpop_jkt of the request (RFC 9449 §10): only a token
	// request with a DPoP proof of that key redeems the code.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
	// AMR and ACR are the session's factors and level (factors.go), for
	// the ID token's amr and acr claims.
	AMR []string `json:"amr,omitempty"`
	ACR string   `json:"acr,omitempty"`

	// Set by the redemption: a second redemption revokes these.
	UsedAt    int64  `json:"used_at,omitempty"`
	Family    string `json:"family,omitempty"`
	AccessJTI string `json:"access_jti,omitempty"`
	AccessExp int64  `json:"access_exp,omitempty"`
}

// IssueCode stores c with the configured lifetime and returns the code
// value (256 random bits; only its hash is stored).
func (m *Manager) IssueCode(ctx context.Context, c Code) (string, error) {
	code := NewSecret()
	c.ExpiresAt = m.opts.Now().Add(m.opts.CodeTTL).UnixNano()
	c.UsedAt, c.Family, c.AccessJTI, c.AccessExp = 0, "", "", 0
	key := Hash(code)
	err := m.store.Batch(ctx, func(tx storage.Tx) error {
		if err := storage.PutJSON(tx, codesBucket, key, &c); err != nil {
			return err
		}
		if err := addClientTx(tx, c.Session, c.ClientID); err != nil {
			return err
		}
		if k, ok := userCodeKey(&c, key); ok {
			return tx.Put(userCodesBucket, k, nil)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("store authorization code: %w", err)
	}
	return code, nil
}

// CodeTx reads the code inside tx (the token endpoint's redemption
// transaction). It returns the storage key, and ErrNotFound for a code
// that does not exist or has the wrong shape. Expiry and use are the
// caller's to check, since a used code must still be found to revoke what
// it issued.
func CodeTx(tx storage.Tx, code string) (Code, string, error) {
	if !looksLikeSecret(code) {
		return Code{}, "", ErrNotFound
	}
	key := Hash(code)
	var c Code
	if err := storage.GetJSON(tx, codesBucket, key, &c); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return Code{}, "", ErrNotFound
		}
		return Code{}, "", err
	}
	return c, key, nil
}

// PutCodeTx writes c back under key inside tx.
func PutCodeTx(tx storage.Tx, key string, c *Code) error {
	return storage.PutJSON(tx, codesBucket, key, c)
}

// userCodeKey is the userCodesBucket key of the code c stored under key:
// user id "/" client id "/" key. Ids with a slash (none are valid) are not
// indexed.
func userCodeKey(c *Code, key string) (string, bool) {
	if c.UserID == "" || c.ClientID == "" || strings.Contains(c.UserID, "/") || strings.Contains(c.ClientID, "/") {
		return "", false
	}
	return c.UserID + "/" + c.ClientID + "/" + key, true
}

// endCodesTx deletes every code indexed under prefix (user id "/" or user
// id "/" client id "/") and its index entries.
func endCodesTx(tx storage.Tx, prefix string) error {
	var keys []string
	err := tx.Scan(userCodesBucket, prefix, func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(codesBucket, k[strings.LastIndexByte(k, '/')+1:]); err != nil {
			return err
		}
		if err := tx.Delete(userCodesBucket, k); err != nil {
			return err
		}
	}
	return nil
}
