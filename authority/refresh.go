package authority

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/resource"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// Buckets of the session state. A refresh token is stored only as the
// base64url SHA-256 of its value, pointing to its family; the family holds
// everything else, including which of its tokens is the live one, so that
// rotation writes two small records and revoking a family is one write.
const (
	refreshTokensBucket   = "refresh_tokens"   // sha256(token) → refreshRecord
	refreshFamiliesBucket = "refresh_families" // family id → familyRecord
	userFamiliesBucket    = "user_families"    // user id "/" family id → ""
	denylistBucket        = "denylist"         // jti → exp (unix seconds, decimal)
	cutoffsBucket         = "subject_cutoffs"  // sub → cutoff (unix seconds, decimal)
)

// What a subject cutoff means. The feed publishes it unchanged, and jwks
// verifiers compare it with iat in whole seconds, so its meaning is fixed
// in those terms: every token of the subject with iat < cutoff is revoked,
// every token with iat >= cutoff is not. Two rules make that exact:
//
//   - a logout sets the cutoff to max(now+1, previous cutoff+1) seconds:
//     past every token issued so far, even one issued with iat = the
//     previous cutoff after an earlier logout in the same second;
//   - every user token is issued with iat = max(now, cutoff), so a token
//     issued after the logout, in the same second or the same nanosecond,
//     is at or past it (up to one second ahead of the clock per logout in
//     that second, well within verifiers' leeway).
//
// Sessions (refresh token families) are not compared with the cutoff at
// all: a clock with one-second (or any) resolution cannot order a logout
// and a login in the same tick. The store's transaction order does: the
// logout revokes every family of the subject in the transaction that
// moves the cutoff, so a family that exists then is marked revoked, and
// a family written later is newer than the logout. A login whose password
// was checked before a logout but whose family would be written after it
// sees the cutoff moved since its check and is refused (passwordGrant):
// every logout moves the cutoff, so the cutoff is also the subject's
// logout version.

// Refresh token lifetimes by default (DESIGN.md, Tokens).
const (
	DefaultRefreshIdleTTL     = 14 * 24 * time.Hour
	DefaultRefreshAbsoluteTTL = 90 * 24 * time.Hour
)

// refreshCookie is the cookie that carries the refresh token for clients
// with RefreshTokenCookie.
const refreshCookie = "signet_refresh_token"

// maxFamilyAccess bounds the access tokens a family remembers for the
// denylist when it is revoked.
const maxFamilyAccess = 16

// Family revocation reasons, as the audit trail and introspection logs say them.
const (
	reasonReuse       = "refresh_token_reuse"
	reasonRevoked     = "revoked_by_client"
	ReasonLogout      = "logout"
	ReasonUserGone    = "user_disabled_or_deleted"
	ReasonUserChanged = "password_changed"
)

type refreshRecord struct {
	Family   string `json:"f"`
	IssuedAt int64  `json:"i"` // unix nanoseconds
}

// familyRecord is one login session: the chain of refresh tokens that
// started with one password grant. Times are unix nanoseconds.
type familyRecord struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	// ClientInstance is the instance of the client the family was issued
	// to (clients/instance.go); "" for families older than instances.
	ClientInstance string   `json:"client_instance,omitempty"`
	UserID         string   `json:"user_id"`
	Scope          string   `json:"scope"`
	Aud            []string `json:"aud"`
	CreatedAt      int64    `json:"created_at"`
	ExpiresAt      int64    `json:"expires_at"` // absolute lifetime
	IdleTTL        int64    `json:"idle_ttl"`
	LastUsed       int64    `json:"last_used"`
	// Current is the hash of the only refresh token that may be used;
	// Previous the one it replaced at RotatedAt (for the reuse grace).
	Current   string `json:"current"`
	Previous  string `json:"previous,omitempty"`
	RotatedAt int64  `json:"rotated_at,omitempty"`
	Rotations int    `json:"rotations"`
	RevokedAt int64  `json:"revoked_at,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Access are the access tokens issued in this family that may not have
	// expired yet: they go on the denylist when the family is revoked.
	Access []issuedAccess `json:"access,omitempty"`
	// AuthTime (unix seconds) and SID are set for families started by the
	// authorization code flow: refreshed ID tokens carry them.
	AuthTime int64    `json:"auth_time,omitempty"`
	SID      string   `json:"sid,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	// Flow is flowCode for families the code flow started (""
	// before this field): while their client is not first party, each
	// refresh needs the user's consent to keeping access (issue 16).
	Flow string `json:"flow,omitempty"`
	// LoginCutoff is the user's cutoff when the family was created. A
	// logout moves the cutoff, which ends every family created before it
	// without writing each of them: one logout is two writes however many
	// sessions the user has (a remote store bounds the writes of one
	// transaction). Nil for families older than this field; a logout
	// revokes those one by one, as before.
	LoginCutoff *int64 `json:"login_cutoff,omitempty"`
	// JKT binds the family to a public client's DPoP key (RFC 9449 §5):
	// each refresh needs a proof made with it. "" for unbound families.
	JKT string `json:"jkt,omitempty"`
}

// live says whether f may still be used at now: not revoked, not expired,
// and (for families that record it) created after the user's last logout,
// which cutoffsBucket holds. Everything that honours a family asks this.
func (f *familyRecord) live(tx storage.Tx, now time.Time) (bool, error) {
	if f.RevokedAt != 0 || now.UnixNano() >= f.expiresAt() {
		return false, nil
	}
	if f.LoginCutoff == nil {
		return true, nil
	}
	cutoff, err := getInt(tx, cutoffsBucket, f.UserID)
	if err != nil {
		return false, err
	}
	return *f.LoginCutoff == cutoff, nil
}

type issuedAccess struct {
	JTI string `json:"j"`
	Exp int64  `json:"e"`
}

// expiresAt is when the family stops working unless used again.
func (f *familyRecord) expiresAt() int64 { return min(f.ExpiresAt, f.LastUsed+f.IdleTTL) }

func (f *familyRecord) addAccess(jti string, exp, now int64) {
	keep := f.Access[:0]
	for _, a := range f.Access {
		if a.Exp > now {
			keep = append(keep, a)
		}
	}
	keep = append(keep, issuedAccess{jti, exp})
	if len(keep) > maxFamilyAccess {
		keep = keep[len(keep)-maxFamilyAccess:]
	}
	f.Access = keep
}

// newRefreshToken returns a 256-bit random token and the key it is stored under.
func newRefreshToken() (tok, key string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	tok = base64.RawURLEncoding.EncodeToString(b[:])
	return tok, refreshKey(tok)
}

func refreshKey(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// looksLikeRefreshToken is the shape of what newRefreshToken makes.
func looksLikeRefreshToken(tok string) bool {
	if len(tok) != 43 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		b := tok[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

func newFamilyID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func errInvalidGrant(desc string) *Error {
	return &Error{Code: "invalid_grant", Description: desc, Status: http.StatusBadRequest}
}

// errBadRefresh is the one answer for a refresh token that is unknown,
// expired, revoked, reused or of another client: the client learns nothing
// that would help it guess.
func errBadRefresh() *Error { return errInvalidGrant("refresh token is invalid, expired or revoked") }

// familyJKT is the DPoP key a new refresh family is bound to: the
// request's, for a public client (RFC 9449 §5). A confidential client's
// refresh tokens are bound by its authentication instead, so it may change
// its DPoP key.
func familyJKT(ent *clients.Entry, p *tokenParams) string {
	if ent.Record.Public {
		return p.dpopJKT
	}
	return ""
}

// errBadLogin is the one answer for an unknown user, a wrong password and a
// disabled user.
func errBadLogin() *Error { return errInvalidGrant("invalid username or password") }

func (s *Server) refreshTTLs(ent *clients.Entry) (idle, absolute time.Duration) {
	idle, absolute = s.cfg.RefreshIdleTTL, s.cfg.RefreshAbsoluteTTL
	if d := time.Duration(ent.Record.RefreshIdleTTL); d > 0 {
		idle = min(idle, d)
	}
	if d := time.Duration(ent.Record.RefreshAbsoluteTTL); d > 0 {
		absolute = min(absolute, d)
	}
	return min(idle, absolute), absolute
}

func getInt(tx storage.Tx, bucket, key string) (int64, error) {
	b, err := tx.Get(bucket, key)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(b), 10, 64)
}

func getFamily(tx storage.Tx, id string) (familyRecord, error) {
	var f familyRecord
	b, err := tx.Get(refreshFamiliesBucket, id)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("decode refresh family: %w", err)
	}
	return f, nil
}

// revokeFamily marks f revoked and puts its live access tokens on the
// denylist (RFC 7009 §2.1, RFC 9700 §4.14.2). The caller writes nothing else
// for f afterwards.
func revokeFamily(tx storage.Tx, f *familyRecord, reason string, now time.Time) error {
	if f.RevokedAt != 0 {
		return nil
	}
	f.RevokedAt, f.Reason = now.UnixNano(), reason
	for _, a := range f.Access {
		if a.Exp > now.Unix() {
			if err := tx.Put(denylistBucket, a.JTI, strconv.AppendInt(nil, a.Exp, 10)); err != nil {
				return err
			}
		}
	}
	f.Access = nil
	return storage.PutJSON(tx, refreshFamiliesBucket, f.ID, f)
}

// passwordGrant is grant_type=password (RFC 6749 §4.3).
func (s *Server) passwordGrant(c echo.Context, ent *clients.Entry, p *tokenParams) error {
	if !ent.GrantPW {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the password grant", Status: http.StatusBadRequest}
	}
	if p.username == "" || p.password == "" {
		return InvalidRequest("username and password are required")
	}
	scope, err := grantScope(ent, p.scope)
	if err != nil {
		return err
	}
	aud, err := grantAudience(ent, p)
	if err != nil {
		return err
	}
	key, err := s.keyFor(ent)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := s.cfg.Now()
	ip := c.RealIP()
	if wait := s.login.RetryAfter(users.NameKey(p.username), ip, now); wait > 0 {
		return errRefused("login_rate_limit", "temporarily_unavailable", "too many failed logins; retry later", http.StatusTooManyRequests,
			int((wait+time.Second-1)/time.Second), nil)
	}

	var rec users.Record
	var cutoff int64 // the subject's logout version the password is checked against
	found := false
	err = s.cfg.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		rec, err = users.Find(tx, p.username)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		cutoff, err = getInt(tx, cutoffsBucket, rec.ID)
		return err
	})
	if err != nil {
		return ServerError(fmt.Errorf("password grant: %w", err))
	}
	hash := s.dummyHash
	if found {
		hash = rec.PasswordHash
	}
	// Always one hash: an unknown user costs what a wrong password does.
	ok, rehash := users.VerifyPassword(hash, p.password, s.cfg.Password)
	if !found || !ok || rec.Disabled {
		s.login.Fail(users.NameKey(p.username), ip, now)
		return errBadLogin()
	}
	s.login.Succeed(users.NameKey(p.username), ip, now)
	if rehash {
		if err := s.users.Rehash(ctx, rec.ID, rec.PasswordHash, p.password); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "password rehash", slog.String("user_id", rec.ID), slog.String("err", err.Error()))
		}
	}

	named, _ := parseScope(p.scope) // grantScope parsed it already
	scope, oe := userScope(&rec.User, scope, named)
	if oe == nil {
		scope, oe = s.passwordGrantFactors(ctx, &rec.User, scope, named)
	}
	if oe != nil {
		return oe
	}
	claims, err := userClaims(&rec, scope)
	if err != nil {
		return ServerError(err)
	}
	spec := accessSpec{sub: rec.ID, scope: scope, aud: aud, jti: newJTI(), iat: max(now.Unix(), cutoff), user: claims, jkt: p.dpopJKT}
	refresh := ""
	if ent.GrantRT {
		var key string
		refresh, key = newRefreshToken()
		idle, absolute := s.refreshTTLs(ent)
		n := now.UnixNano()
		fam := familyRecord{ID: newFamilyID(), ClientID: ent.Record.ID, ClientInstance: ent.Record.Instance, UserID: rec.ID, Scope: scope, Aud: aud,
			CreatedAt: n, ExpiresAt: n + int64(absolute), IdleTTL: int64(idle), LastUsed: n, Current: key, LoginCutoff: &cutoff,
			JKT: familyJKT(ent, p)}
		fam.addAccess(spec.jti, spec.iat+int64(s.accessTTL(ent)/time.Second), now.Unix())
		tr, err := json.Marshal(refreshRecord{Family: fam.ID, IssuedAt: n})
		if err != nil {
			return ServerError(err)
		}
		raced := false
		err = s.cfg.Store.Batch(ctx, func(tx storage.Tx) error {
			// A logout (or password change, or disabling) committed since
			// the password was checked: this login belongs before it.
			// Refused without an error, which would roll back the batch.
			cur, err := getInt(tx, cutoffsBucket, rec.ID)
			if raced = cur != cutoff || err != nil; raced {
				return err
			}
			if err := tx.Put(refreshTokensBucket, key, tr); err != nil {
				return err
			}
			if err := tx.Put(userFamiliesBucket, rec.ID+"/"+fam.ID, nil); err != nil {
				return err
			}
			return storage.PutJSON(tx, refreshFamiliesBucket, fam.ID, &fam)
		})
		if err != nil {
			return ServerError(fmt.Errorf("store refresh token: %w", err))
		}
		if raced {
			return errBadLogin()
		}
	}
	at, err := s.sign(key, ent, spec)
	if err != nil {
		return err
	}
	if s.cfg.TokenMetrics != nil {
		s.cfg.TokenMetrics.Issued(clients.GrantPassword, ent.Record.SigningAlg, ent.Record.ID)
	}
	return s.writeUserTokens(c, ent, at, scope, refresh)
}

// writeUserTokens answers a password or refresh grant, putting the refresh
// token in the body or, for a cookie client, in a cookie.
func (s *Server) writeUserTokens(c echo.Context, ent *clients.Entry, at signedAccess, scope, refresh string) error {
	if refresh != "" && ent.Record.RefreshTokenCookie {
		idle, _ := s.refreshTTLs(ent)
		s.setRefreshCookie(c, refresh, int(idle/time.Second))
		refresh = ""
	}
	return writeTokenResponseType(c, at.tokenType(), at.token, at.ttl, scope, refresh)
}

// refreshOutcome is what one run of the rotation transaction decided. It
// is reset at the start of every run: Batch may run the function again.
type refreshOutcome struct {
	err      *Error
	reuse    bool
	family   familyRecord
	user     []byte
	scope    string
	aud      []string
	iat      int64
	denied   bool // the denylist changed
	mismatch bool // the token belongs to another client
}

// refreshGrant is grant_type=refresh_token (RFC 6749 §6) with rotation and
// reuse detection (RFC 9700 §4.14.2). The read, the checks and every write
// are one batched transaction, so two requests with the same token cannot
// both rotate it.
func (s *Server) refreshGrant(c echo.Context, ent *clients.Entry, p *tokenParams) error {
	if !ent.GrantRT {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the refresh_token grant", Status: http.StatusBadRequest}
	}
	tok := p.refreshToken
	if tok == "" && ent.Record.RefreshTokenCookie {
		var err error
		if tok, _, err = s.cookieRefreshToken(c, ent); err != nil {
			return err
		}
	}
	if tok == "" {
		return InvalidRequest("refresh_token is required")
	}
	if !looksLikeRefreshToken(tok) {
		return errBadRefresh()
	}
	requested, perr := parseScope(p.scope)
	if perr != nil {
		return perr
	}
	wantAud, err := resource.Requested(p.audience, p.resources)
	if err != nil {
		return targetError(err)
	}
	key, err := s.keyFor(ent)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := s.cfg.Now()
	hash := refreshKey(tok)
	next, nextKey := newRefreshToken()
	jti := newJTI()
	ttl := int64(s.accessTTL(ent) / time.Second)
	grace := int64(ent.Record.RefreshReuseGrace)
	tr, err := json.Marshal(refreshRecord{IssuedAt: now.UnixNano()})
	if err != nil {
		return ServerError(err)
	}
	var out refreshOutcome
	err = s.cfg.Store.Batch(ctx, func(tx storage.Tx) error {
		out = refreshOutcome{}
		return s.rotate(tx, &out, rotation{ent: ent, hash: hash, nextKey: nextKey, jti: jti, ttl: ttl, grace: grace,
			requested: requested, aud: wantAud, now: now, tr: tr, jkt: p.dpopJKT})
	})
	if err != nil {
		return ServerError(fmt.Errorf("rotate refresh token: %w", err))
	}
	if out.denied {
		s.feed.invalidate()
	}
	if out.reuse {
		s.log.LogAttrs(ctx, slog.LevelWarn, "refresh token reuse: family revoked",
			slog.String("client_id", ent.Record.ID), slog.String("family", out.family.ID), slog.String("user_id", out.family.UserID))
		s.Record(c, AuditEvent{Actor: ent.Record.ID, Action: "refresh.reuse_detected", Target: out.family.UserID, Outcome: "family_revoked",
			Detail: fmt.Sprintf("family=%s reason=%s: a refresh token that was already rotated was presented again; every token of the family is revoked", out.family.ID, reasonReuse)})
	}
	if out.mismatch {
		s.log.LogAttrs(ctx, slog.LevelWarn, "refresh token presented by another client", slog.String("client_id", ent.Record.ID))
	}
	if out.err != nil {
		return out.err
	}
	at, err := s.sign(key, ent, accessSpec{sub: out.family.UserID, scope: out.scope, aud: out.aud, jti: jti, iat: out.iat, user: out.user, jkt: p.dpopJKT})
	if err != nil {
		return err
	}
	idTok, err := s.refreshedIDToken(ent, &out.family, out.scope, out.iat, at.token)
	if err != nil {
		return err
	}
	if s.cfg.TokenMetrics != nil {
		s.cfg.TokenMetrics.Issued(clients.GrantRefreshToken, ent.Record.SigningAlg, ent.Record.ID)
	}
	return s.writeOIDCTokens(c, ent, at, out.scope, next, idTok)
}

type rotation struct {
	ent           *clients.Entry
	hash, nextKey string
	jti           string
	ttl, grace    int64
	requested     []string
	aud           []string
	now           time.Time
	tr            []byte // refreshRecord of the new token without its family
	jkt           string // the request's DPoP key thumbprint, "" without a proof
}

// rotate is the body of the refresh transaction. Refusals are reported in
// out, not returned: a returned error would roll back the other requests
// sharing the batch, and a detected reuse must commit its revocation.
func (s *Server) rotate(tx storage.Tx, out *refreshOutcome, r rotation) error {
	b, err := tx.Get(refreshTokensBucket, r.hash)
	if errors.Is(err, storage.ErrNotFound) {
		out.err = errBadRefresh()
		return nil
	}
	if err != nil {
		return err
	}
	var rec refreshRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("decode refresh token: %w", err)
	}
	f, err := getFamily(tx, rec.Family)
	if errors.Is(err, storage.ErrNotFound) {
		out.err = errBadRefresh()
		return nil
	}
	if err != nil {
		return err
	}
	out.family = f
	now := r.now.UnixNano()
	switch {
	case f.ClientID != r.ent.Record.ID, f.ClientInstance != r.ent.Record.Instance:
		// Never revoke here: another client could kill this session at
		// will (SECURITY.md T15). A family of a deleted client whose id was
		// reused is another client's too, and dead already.
		out.err, out.mismatch = errBadRefresh(), true
		return nil
	}
	if live, err := f.live(tx, r.now); err != nil || !live {
		out.err = errBadRefresh()
		return err
	}
	retry := false
	if r.hash != f.Current {
		if r.grace > 0 && r.hash == f.Previous && now-f.RotatedAt <= r.grace {
			retry = true // the answer to the last rotation was lost: rotate again from here
		} else {
			out.err, out.reuse, out.denied = errBadRefresh(), true, len(f.Access) > 0
			err := revokeFamily(tx, &f, reasonReuse, r.now)
			out.family = f
			return err
		}
	}
	if f.JKT != "" && subtle.ConstantTimeCompare([]byte(f.JKT), []byte(r.jkt)) != 1 {
		// Bound to a public client's DPoP key: without a proof made with
		// it the token is refused, and nothing is written.
		out.err = errInvalidGrant("the refresh token is bound to a DPoP key: send a DPoP proof made with it")
		return nil
	}
	user, err := users.Read(tx, f.UserID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	cutoff, err2 := getInt(tx, cutoffsBucket, f.UserID)
	if err2 != nil {
		return err2
	}
	// No comparison of f with the cutoff: a logout revoked every family
	// that existed then (see the cutoff rules at the top).
	if err != nil || user.Disabled {
		out.err, out.denied = errBadRefresh(), len(f.Access) > 0
		return revokeFamily(tx, &f, ReasonUserGone, r.now)
	}
	if f.Flow == flowCode && !r.ent.Record.FirstParty {
		ok, err := sessions.ConsentedTx(tx, &sessions.Consent{UserID: f.UserID, ClientID: f.ClientID, ClientInstance: f.ClientInstance, Offline: true})
		if err != nil || !ok {
			out.err = errBadRefresh()
			return err
		}
	}
	// Every value the family carries is granted again, against the client
	// and the user as they are now: the client's grant, instance and
	// enabled state were checked by the caller and above, the user's
	// state just now; scope and audience may narrow, never widen (RFC 6749
	// §6), and never go beyond what the client is allowed today or (for a
	// privileged scope) what the user may hold. What the client lost is
	// dropped; asked for by name, it is refused.
	scope := SplitScope(f.Scope)
	if r.requested != nil {
		for _, sc := range r.requested {
			if !slices.Contains(scope, sc) {
				out.err = errInvalidScope("scope " + sc + " was not granted to this refresh token")
				return nil
			}
		}
		scope = r.requested
	}
	kept := make([]string, 0, len(scope))
	for _, sc := range scope {
		if slices.Contains(r.ent.Record.Scopes, sc) {
			kept = append(kept, sc)
		} else if r.requested != nil {
			out.err = errInvalidScope("scope " + sc + " is no longer allowed for this client")
			return nil
		}
	}
	var oe *Error
	if out.scope, oe = userScope(&user.User, strings.Join(kept, " "), r.requested); oe != nil {
		out.err = oe
		return nil
	}
	if out.aud, err = resource.Narrow(f.Aud, r.aud, r.ent.Record.Audiences, "refresh token"); err != nil {
		out.err = targetError(err)
		return nil
	}
	out.iat = max(r.now.Unix(), cutoff)
	if out.user, err = userClaims(&user, out.scope); err != nil {
		return err
	}

	if !retry {
		f.Previous, f.RotatedAt = f.Current, now
	}
	f.Current, f.LastUsed = r.nextKey, now
	f.Rotations++
	f.addAccess(r.jti, out.iat+r.ttl, r.now.Unix())
	out.family = f
	// r.tr is {"f":"","i":N}: set the family without decoding it again.
	tr := append([]byte(`{"f":"`+f.ID+`"`), r.tr[len(`{"f":""`):]...)
	if err := tx.Put(refreshTokensBucket, r.nextKey, tr); err != nil {
		return err
	}
	return storage.PutJSON(tx, refreshFamiliesBucket, f.ID, &f)
}

// logoutTx revokes every family of sub and moves its cutoff so that every
// access token issued until now is rejected (see the cutoff rules at the
// top). It returns the number of families revoked and the new cutoff.
func logoutTx(tx storage.Tx, sub, reason string, now time.Time) (int, int64, error) {
	var ids []string
	err := tx.Scan(userFamiliesBucket, sub+"/", func(k string, _ []byte) error {
		ids = append(ids, strings.TrimPrefix(k, sub+"/"))
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, id := range ids {
		f, err := getFamily(tx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		live, err := f.live(tx, now)
		if err != nil {
			return 0, 0, err
		}
		if live {
			n++
		}
		if f.LoginCutoff != nil {
			continue // ended by the new cutoff below, without a write
		}
		if err := revokeFamily(tx, &f, reason, now); err != nil {
			return 0, 0, err
		}
	}
	old, err := getInt(tx, cutoffsBucket, sub)
	if err != nil {
		return 0, 0, err
	}
	cutoff := max(now.Unix()+1, old+1)
	if err := tx.Put(cutoffsBucket, sub, strconv.AppendInt(nil, cutoff, 10)); err != nil {
		return 0, 0, err
	}
	return n, cutoff, nil
}

// Logout revokes every refresh token family of the user (or any subject)
// sub and records a cutoff that invalidates every access token issued to
// sub until now (for verifiers that read the revocation feed). It returns
// how many families were revoked.
func (s *Server) Logout(ctx context.Context, sub string) (int, error) {
	return s.logout(ctx, sub, ReasonLogout)
}

func (s *Server) logout(ctx context.Context, sub, reason string) (int, error) {
	n, _, err := s.LogoutCutoff(ctx, sub, reason)
	return n, err
}

// LogoutCutoff is logout that also returns the subject's new cutoff;
// reason is one of the Reason constants.
func (s *Server) LogoutCutoff(ctx context.Context, sub, reason string) (int, int64, error) {
	n, cutoff, err := revokeSessions(ctx, s.cfg.Store, sub, reason, s.cfg.Now())
	s.feed.invalidate()
	return n, cutoff, err
}

// RevokeSessions is Logout on a store no server holds (the offline CLI):
// it revokes every refresh token family of sub and records its cutoff.
func RevokeSessions(ctx context.Context, store storage.Store, sub string, now time.Time) (int, error) {
	n, _, err := revokeSessions(ctx, store, sub, ReasonLogout, now)
	return n, err
}

func revokeSessions(ctx context.Context, store storage.Store, sub, reason string, now time.Time) (int, int64, error) {
	var n int
	var cutoff int64
	err := store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if n, cutoff, err = logoutTx(tx, sub, reason, now); err != nil {
			return err
		}
		return endBrowserSessions(tx, sub)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("logout %s: %w", sub, err)
	}
	return n, cutoff, nil
}
