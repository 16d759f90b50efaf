package authority

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// Token type hints (RFC 7009 §2.1, RFC 7662 §2.1).
const (
	hintAccess  = "access_token"
	hintRefresh = "refresh_token"
)

// UnmarshalJSON reads aud as a string or an array of strings.
func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// readClientRequest parses and authenticates a revocation or introspection
// request (the token endpoint's transport rules and client authentication).
func (s *Server) readClientRequest(c echo.Context) (*clients.Entry, tokenParams, error) {
	r := c.Request()
	if r.Method != http.MethodPost {
		return nil, tokenParams{}, &Error{Code: "invalid_request", Description: "this endpoint accepts only POST", Status: http.StatusMethodNotAllowed, allow: http.MethodPost}
	}
	p, err := readTokenParams(r)
	if err != nil {
		return nil, p, err
	}
	if p.grantType != "" || p.username != "" || p.password != "" || p.refreshToken != "" {
		return nil, p, InvalidRequest("unexpected token endpoint parameters")
	}
	switch p.tokenTypeHint {
	case "", hintAccess, hintRefresh:
	default:
		return nil, p, &Error{Code: "unsupported_token_type", Description: "token_type_hint must be access_token or refresh_token", Status: http.StatusBadRequest}
	}
	ent, err := s.authenticate(c, r, &p)
	if err != nil {
		return nil, p, err
	}
	return ent, p, nil
}

// revoke is POST /oauth2/revoke (RFC 7009). A refresh token revokes its
// family and the family's access tokens; an access token goes on the
// denylist until it expires. Unknown, expired and already revoked tokens
// are answered 200, as §2.2 says; another client's token is refused.
func (s *Server) revoke(c echo.Context) error {
	ent, p, err := s.readClientRequest(c)
	if err != nil {
		return err
	}
	s.allowBrowserOrigin(c, ent)
	tok := p.token
	fromCookie := false
	if tok == "" && ent.Record.RefreshTokenCookie {
		if tok, fromCookie, err = s.cookieRefreshToken(c, ent); err != nil {
			return err
		}
	}
	if tok == "" {
		return InvalidRequest("token is required")
	}
	ctx := c.Request().Context()
	now := s.cfg.Now()
	notYours := &Error{Code: "unauthorized_client", Description: "the token was not issued to this client", Status: http.StatusBadRequest}
	switch {
	case looksLikeRefreshToken(tok):
		var mismatch, revoked bool
		var fam familyRecord
		err := s.cfg.Store.Update(ctx, func(tx storage.Tx) error {
			mismatch, revoked = false, false
			b, err := tx.Get(refreshTokensBucket, refreshKey(tok))
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			var rec refreshRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				return err
			}
			fam, err = getFamily(tx, rec.Family)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if fam.ClientID != ent.Record.ID || fam.ClientInstance != ent.Record.Instance {
				mismatch = true
				return nil
			}
			live, err := fam.live(tx, now)
			if err != nil {
				return err
			}
			revoked = live
			return revokeFamily(tx, &fam, reasonRevoked, now)
		})
		if err != nil {
			return ServerError(fmt.Errorf("revoke refresh token: %w", err))
		}
		if mismatch {
			return notYours
		}
		if revoked {
			s.feed.invalidate()
			s.Record(c, AuditEvent{Actor: ent.Record.ID, Action: "refresh.revoke", Target: fam.UserID, Outcome: "ok", Detail: "family=" + fam.ID})
		}
	default:
		at, terr := s.readAccessToken(tok)
		if terr != nil || at.Exp <= now.Unix() {
			break // not ours, malformed or expired: nothing to revoke
		}
		if at.ClientID != ent.Record.ID || at.Instance != ent.Record.Instance {
			return notYours
		}
		err := s.cfg.Store.Update(ctx, func(tx storage.Tx) error {
			return tx.Put(denylistBucket, at.Jti, strconv.AppendInt(nil, at.Exp, 10))
		})
		if err != nil {
			return ServerError(fmt.Errorf("revoke access token: %w", err))
		}
		s.feed.invalidate()
	}
	h := c.Response().Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	if fromCookie {
		s.setRefreshCookie(c, "", -1)
	}
	return c.NoContent(http.StatusOK)
}

// introspection is the RFC 7662 §2.2 response.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       audience `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	// Cnf is the key a DPoP-bound token is bound to (RFC 9449 §6.2).
	Cnf *confirmation `json:"cnf,omitempty"`
}

// introspect is POST /oauth2/introspect (RFC 7662) for clients with
// Introspect. Anything that is not a live token of this issuer is
// {"active": false}, with no reason.
func (s *Server) introspect(c echo.Context) error {
	ent, p, err := s.readClientRequest(c)
	if err != nil {
		return err
	}
	if !ent.Record.Introspect {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed to introspect tokens", Status: http.StatusForbidden}
	}
	if p.token == "" {
		return InvalidRequest("token is required")
	}
	res, err := s.inspect(c, p.token)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	return c.JSON(http.StatusOK, res)
}

func (s *Server) inspect(c echo.Context, tok string) (introspection, error) {
	ctx := c.Request().Context()
	now := s.cfg.Now()
	inactive := introspection{}
	if looksLikeRefreshToken(tok) {
		var res introspection
		var instance string
		err := s.cfg.Store.View(ctx, func(tx storage.Tx) error {
			res = introspection{}
			b, err := tx.Get(refreshTokensBucket, refreshKey(tok))
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			var rec refreshRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				return err
			}
			f, err := getFamily(tx, rec.Family)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if live, err := f.live(tx, now); err != nil || !live || f.Current != refreshKey(tok) {
				return err
			}
			u, err := users.Read(tx, f.UserID)
			if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
				return nil
			}
			if err != nil {
				return err
			}
			// No cutoff comparison: a logout revoked every family that
			// existed then (refresh.go, the cutoff rules).
			res = introspection{Active: true, Scope: f.Scope, ClientID: f.ClientID, Sub: f.UserID, Aud: f.Aud, Iss: s.cfg.Issuer,
				Exp: f.expiresAt() / int64(time.Second), Iat: rec.IssuedAt / int64(time.Second), TokenType: hintRefresh}
			instance = f.ClientInstance
			return nil
		})
		if err != nil {
			return inactive, ServerError(fmt.Errorf("introspect: %w", err))
		}
		if !res.Active {
			return inactive, nil
		}
		// The family's client must still be the instance it was issued to.
		ent, err := s.clients.Lookup(ctx, res.ClientID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return inactive, nil
		case err != nil:
			return inactive, ServerError(fmt.Errorf("introspect: %w", err))
		case ent.Record.Instance != instance, ent.Record.Disabled:
			return inactive, nil
		}
		return res, nil
	}
	at, why, err := s.liveAccessToken(ctx, tok)
	if err != nil {
		return inactive, ServerError(fmt.Errorf("introspect: %w", err))
	}
	if why != "" {
		return inactive, nil
	}
	tokenType := "Bearer"
	if at.Cnf != nil {
		tokenType = "DPoP"
	}
	return introspection{Active: true, Scope: at.Scope, ClientID: at.ClientID, Sub: at.Sub, Aud: at.Aud, Iss: at.Iss,
		Exp: at.Exp, Iat: at.Iat, Nbf: at.Nbf, Jti: at.Jti, TokenType: tokenType, Cnf: at.Cnf}, nil
}
