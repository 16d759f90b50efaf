package authority

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// idTokenAlg is the algorithm of ent's ID tokens: its registered
// id_token_signed_response_alg, else RS256 (OIDC Core §3.1.3.7) when it is
// live, else the client's access-token algorithm.
func (s *Server) idTokenAlg(ent *clients.Entry) string {
	if a := ent.Record.IDTokenSignedResponseAlg; a != "" {
		return a
	}
	if slices.Contains(s.cfg.Algorithms, "RS256") {
		return "RS256"
	}
	return ent.Record.SigningAlg
}

type idTokenSpec struct {
	sub, nonce, sid string
	authTime, iat   int64
	amr             []string // sessions.Session.AMR; nil for none
	acr             string
	accessToken     string
	scope           string
	user            *users.Record // nil: no profile or email claims
}

// idClaims are the ID token claims (OIDC Core §2), in order.
type idClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce,omitempty"`
	Azp      string   `json:"azp"`
	AtHash   string   `json:"at_hash,omitempty"`
	Sid      string   `json:"sid,omitempty"`
	Acr      string   `json:"acr,omitempty"`
	Amr      []string `json:"amr,omitempty"`
	// Instance is the client instance (clients.ClaimClientInstance), as in
	// access tokens: an id_token_hint is honoured only for that instance.
	Instance string `json:"client_instance,omitempty"`

	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// SignLogoutToken signs the claims of a back-channel logout token for
// clientID (package backchannel) the way its ID tokens are signed: the
// client's ID token algorithm, the active key, header typ logout+jwt.
func (s *Server) SignLogoutToken(ctx context.Context, clientID string, claims []byte) (string, error) {
	ent, err := s.clients.Lookup(ctx, clientID)
	if err != nil {
		return "", err
	}
	key, err := s.logoutKeys.Get(s.cfg.Signer, s.idTokenAlg(ent))
	if err != nil {
		return "", fmt.Errorf("logout token key for %s: %w", clientID, err)
	}
	return key.Sign(claims)
}

// idToken signs an ID token for ent.
func (s *Server) idToken(ent *clients.Entry, sp idTokenSpec) (string, error) {
	alg := s.idTokenAlg(ent)
	key, err := s.idKeys.Get(s.cfg.Signer, alg)
	if err != nil {
		return "", ServerError(fmt.Errorf("ID token key for %s: %w", alg, err))
	}
	cl := idClaims{Iss: s.cfg.Issuer, Sub: sp.sub, Aud: ent.Record.ID, Iat: sp.iat, Exp: sp.iat + int64(s.accessTTL(ent)/time.Second),
		AuthTime: sp.authTime, Nonce: sp.nonce, Azp: ent.Record.ID, AtHash: atHash(alg, sp.accessToken), Sid: sp.sid, Acr: sp.acr, Amr: sp.amr, Instance: ent.Record.Instance}
	if u := sp.user; u != nil {
		if hasScope(sp.scope, "profile") {
			cl.Name, cl.PreferredUsername = u.Name, u.Username
		}
		if hasScope(sp.scope, "email") && u.Email != "" {
			v := u.EmailVerified
			cl.Email, cl.EmailVerified = u.Email, &v
		}
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		return "", ServerError(err)
	}
	tok, err := key.Sign(payload)
	if err != nil {
		return "", errSigning(fmt.Errorf("sign ID token for %s: %w", ent.Record.ID, err))
	}
	return tok, nil
}

// atHash is OIDC Core §3.1.3.6: the left half of the hash of the access
// token, with the hash of the ID token's algorithm.
func atHash(alg, token string) string {
	if token == "" {
		return ""
	}
	var h hash.Hash
	switch alg {
	case "ES384":
		h = sha512.New384()
	case "ES512", "EdDSA":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write([]byte(token))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// writeOIDCTokens answers a token request with an optional ID token; a
// cookie client gets its refresh token in the cookie, as writeUserTokens does.
func (s *Server) writeOIDCTokens(c echo.Context, ent *clients.Entry, at signedAccess, scope, refresh, idToken string) error {
	if idToken == "" {
		return s.writeUserTokens(c, ent, at, scope, refresh)
	}
	if refresh != "" && ent.Record.RefreshTokenCookie {
		idle, _ := s.refreshTTLs(ent)
		s.setRefreshCookie(c, refresh, int(idle/time.Second))
		refresh = ""
	}
	b := make([]byte, 0, len(at.token)+len(idToken)+len(scope)+len(refresh)+160)
	b = append(b, `{"access_token":"`...)
	b = append(b, at.token...)
	b = append(b, `","token_type":"`...)
	b = append(b, at.tokenType()...)
	b = append(b, `","expires_in":`...)
	b = strconv.AppendInt(b, int64(at.ttl/time.Second), 10)
	b = append(b, `,"scope":"`...)
	b = append(b, scope...) // validated scope tokens: no escaping needed
	b = append(b, `","id_token":"`...)
	b = append(b, idToken...)
	b = append(b, '"')
	if refresh != "" {
		b = append(b, `,"refresh_token":"`...)
		b = append(b, refresh...)
		b = append(b, '"')
	}
	b = append(b, '}')
	h := c.Response().Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	return c.JSONBlob(http.StatusOK, b)
}

// refreshedIDToken is the ID token of a refresh in a code-flow family
// with scope openid (OIDC Core §12.2): same iss, sub, aud, azp, auth_time
// and sid, a new iat; "" for other families.
func (s *Server) refreshedIDToken(ent *clients.Entry, f *familyRecord, scope string, iat int64, accessToken string) (string, error) {
	if f.AuthTime == 0 || !hasScope(scope, "openid") {
		return "", nil
	}
	return s.idToken(ent, idTokenSpec{sub: f.UserID, sid: f.SID, authTime: f.AuthTime, amr: f.AMR, acr: f.ACR, iat: iat, accessToken: accessToken, scope: scope})
}

// IDTokenHint is what a verified id_token_hint says.
type IDTokenHint struct {
	Sub      string
	Audience []string
	SID      string
}

// ErrBadIDTokenHint is returned for an id_token_hint this issuer did not
// sign, or signed for a client that no longer exists as it was.
var ErrBadIDTokenHint = errors.New("authority: id_token_hint is not an ID token of this issuer")

// VerifyIDTokenHint checks that tok is an ID token this Signet signed with
// a published key (the algorithm taken from the key, never alg none) for
// this issuer, read by the same strict parser as access tokens (verifyJWS:
// compact, canonical base64url, no duplicate members), and that its client
// (aud) is the same instance that it was issued to: the ID token of a
// deleted client speaks for no client created later under its id. Expiry
// is ignored (OIDC Core §3.1.2.1: the hint may have expired).
func (s *Server) VerifyIDTokenHint(ctx context.Context, tok string) (IDTokenHint, error) {
	id, err := s.readIDToken(ctx, tok)
	if err != nil {
		return IDTokenHint{}, err
	}
	return IDTokenHint{Sub: id.Sub, Audience: []string{id.Aud}, SID: id.Sid}, nil
}

// liveIDToken is liveAccessToken for an ID token (VerifyToken): read as a
// hint is, within exp and iat, and not dead (tokenDead: the cutoff, the
// client). Its aud becomes ClientID; it has no jti, scope or cnf.
func (s *Server) liveIDToken(ctx context.Context, tok string) (at *accessClaims, why string, err error) {
	id, err := s.readIDToken(ctx, tok)
	switch {
	case errors.Is(err, ErrBadIDTokenHint):
		return nil, "not an ID token of this issuer", nil
	case err != nil:
		return nil, "", err
	}
	now := s.cfg.Now().Unix()
	switch {
	case id.Exp <= now:
		return nil, "token is expired", nil
	case id.Iat > now+int64(adminLeeway/time.Second):
		return nil, "token is not valid yet", nil
	}
	at = &accessClaims{Iss: id.Iss, Sub: id.Sub, Aud: audience{id.Aud}, Exp: id.Exp, Iat: id.Iat, ClientID: id.Aud, Instance: id.Instance}
	if why, err = s.tokenDead(ctx, at); err != nil || why != "" {
		return nil, why, err
	}
	return at, "", nil
}

// readIDToken is the check of VerifyIDTokenHint, shared with liveIDToken.
func (s *Server) readIDToken(ctx context.Context, tok string) (idClaims, error) {
	var id idClaims
	payload, terr := s.verifyJWS(tok, func(typ string) *tokenError {
		if typ != "JWT" {
			return badToken("not an ID token (typ)")
		}
		return nil
	})
	if terr != nil {
		return id, ErrBadIDTokenHint
	}
	m, err := jsonObject(payload)
	if err != nil {
		return id, ErrBadIDTokenHint
	}
	for _, c := range []struct {
		name     string
		dst      any
		required bool
	}{{"iss", &id.Iss, true}, {"sub", &id.Sub, true}, {"aud", &id.Aud, true}, {"exp", &id.Exp, true}, {"iat", &id.Iat, true},
		{"sid", &id.Sid, false}, {clients.ClaimClientInstance, &id.Instance, false}} {
		v, ok := m[c.name]
		if !ok && !c.required {
			continue
		}
		if !ok || json.Unmarshal(v, c.dst) != nil {
			return id, ErrBadIDTokenHint // Signet writes aud as one string
		}
	}
	if id.Iss != s.cfg.Issuer || id.Sub == "" || id.Aud == "" {
		return id, ErrBadIDTokenHint
	}
	ent, err := s.clients.Lookup(ctx, id.Aud)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return id, ErrBadIDTokenHint
		}
		return id, fmt.Errorf("id_token_hint client: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(ent.Record.Instance), []byte(id.Instance)) != 1 {
		return id, ErrBadIDTokenHint
	}
	return id, nil
}
