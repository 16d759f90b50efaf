package authority

import (
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
	"github.com/signet-auth/signet/keys/jwssign"
	"github.com/signet-auth/signet/resource"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// flowCode marks the refresh families the code flow starts.
const flowCode = "code"

// reasonCodeReuse is the family revocation reason when its authorization
// code is presented a second time (RFC 6749 §4.1.2).
const reasonCodeReuse = "authorization_code_reuse"

// errBadCode is the one answer for a code that is unknown, expired, used,
// of another client, sent to another redirect URI or with a wrong verifier.
func errBadCode() *Error {
	return errInvalidGrant("authorization code is invalid, expired or already used, or does not match this request")
}

// allowBrowserOrigin lets a public client's own web origins (those of its
// redirect URIs) read the token or revocation answer, so a SPA can redeem
// its code, refresh and revoke (with credentials, for the refresh cookie).
// A plain form POST is a CORS simple request; one with a DPoP header is
// preflighted (clientCORS.Preflight).
func (s *Server) allowBrowserOrigin(c echo.Context, ent *clients.Entry) {
	origin := c.Request().Header.Get("Origin")
	if origin == "" || !ent.Record.Public {
		return
	}
	if ent.Record.WebOrigin(origin) {
		clientCORS.AllowOrigin(c, origin)
	}
}

// validVerifier is RFC 7636 §4.1: 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~') {
			return false
		}
	}
	return true
}

// S256 is the PKCE S256 challenge of verifier.
func S256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// codeOutcome is what one run of the redemption transaction decided.
type codeOutcome struct {
	err      *Error
	reuse    bool
	denied   bool
	code     sessions.Code
	redeemed // scope: the code's scope as the client and user may hold it now
}

// codeGrant is grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636
// §4.6, OIDC Core §3.1.3). The code is read, checked and marked used in
// one transaction with the refresh family it starts, so of any number of
// concurrent redemptions exactly one succeeds, and a later one finds what
// to revoke.
func (s *Server) codeGrant(c echo.Context, ent *clients.Entry, p *tokenParams) error {
	if !slices.Contains(ent.Record.GrantTypes, clients.GrantAuthorizationCode) {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the authorization_code grant", Status: http.StatusBadRequest}
	}
	if p.code == "" {
		return InvalidRequest("code is required")
	}
	if p.codeVerifier != "" && !validVerifier(p.codeVerifier) {
		return errInvalidGrant("code_verifier must be 43 to 128 unreserved characters (RFC 7636)")
	}
	key, r, refresh, err := s.prepareRedemption(ent, p)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var out codeOutcome
	// Batch: concurrent redemptions share a commit; the function reports
	// refusals in out, so one refusal never rolls back another's success.
	err = s.cfg.Store.Batch(ctx, func(tx storage.Tx) error {
		out = codeOutcome{}
		return s.redeemTx(tx, &out, r)
	})
	if err != nil {
		return ServerError(fmt.Errorf("redeem authorization code: %w", err))
	}
	if out.denied {
		s.feed.invalidate()
	}
	if out.reuse {
		s.log.LogAttrs(ctx, slog.LevelWarn, "authorization code reuse: its tokens are revoked",
			slog.String("client_id", ent.Record.ID), slog.String("user_id", out.code.UserID), slog.String("family", out.code.Family))
		s.Record(c, AuditEvent{Actor: ent.Record.ID, Action: "code.reuse_detected", Target: out.code.UserID, Outcome: "tokens_revoked",
			Detail: fmt.Sprintf("family=%s: an authorization code was presented again; the tokens issued from it are revoked", out.code.Family)})
	}
	if out.err != nil {
		return out.err
	}
	return s.issueRedeemed(c, ent, key, r, refresh, out.redeemed, clients.GrantAuthorizationCode,
		idTokenSpec{sub: out.code.UserID, nonce: out.code.Nonce, sid: out.code.SID, authTime: out.code.AuthTime, amr: out.code.AMR, acr: out.code.ACR})
}

// redeemed is what a single-use user grant (a code, a device code) decided
// in its transaction: the user as stored, their claims, the iat, the
// refresh family started ("" for none) and the scope granted now.
type redeemed struct {
	user   users.Record
	claims []byte
	iat    int64
	family string
	scope  string
	// aud is the access token's audience, famAud the refresh family's.
	aud, famAud []string
}

// prepareRedemption checks what a single-use user grant needs before the
// grant is spent, the access and ID token keys (a missing key must not cost
// the client its code), and draws the ids of what it will issue.
func (s *Server) prepareRedemption(ent *clients.Entry, p *tokenParams) (*jwssign.Key, redemption, string, error) {
	key, err := s.keyFor(ent)
	if err != nil {
		return nil, redemption{}, "", err
	}
	if slices.Contains(ent.Record.Scopes, "openid") {
		if _, err := s.idKeys.Get(s.cfg.Signer, s.idTokenAlg(ent)); err != nil {
			return nil, redemption{}, "", ServerError(fmt.Errorf("ID token key for %s: %w", ent.Record.ID, err))
		}
	}
	want, err := resource.Requested(p.audience, p.resources)
	if err != nil {
		return nil, redemption{}, "", targetError(err)
	}
	refresh, refreshHash := "", ""
	if ent.GrantRT {
		refresh, refreshHash = newRefreshToken()
	}
	r := redemption{ent: ent, p: p, now: s.cfg.Now(), jti: newJTI(), ttl: s.accessTTL(ent), refreshHash: refreshHash, famID: newFamilyID(), want: want}
	return key, r, refresh, nil
}

// issueRedeemed signs the access token (bound to the request's DPoP key,
// when it had a proof) and the ID token of a redeemed grant, and writes
// the answer. id names the ID token's login (sub, nonce, sid, auth_time).
func (s *Server) issueRedeemed(c echo.Context, ent *clients.Entry, key *jwssign.Key, r redemption, refresh string, g redeemed, grant string, id idTokenSpec) error {
	spec := accessSpec{sub: id.sub, scope: g.scope, aud: g.aud, jti: r.jti, iat: g.iat, user: g.claims, jkt: r.p.dpopJKT}
	at, err := s.sign(key, ent, spec)
	if err != nil {
		return err
	}
	idTok := ""
	if hasScope(g.scope, "openid") {
		id.iat, id.accessToken, id.scope, id.user = g.iat, at.token, g.scope, &g.user
		if idTok, err = s.idToken(ent, id); err != nil {
			return err
		}
	}
	if s.cfg.TokenMetrics != nil {
		s.cfg.TokenMetrics.Issued(grant, ent.Record.SigningAlg, ent.Record.ID)
	}
	if g.family == "" {
		refresh = ""
	}
	return s.writeOIDCTokens(c, ent, at, g.scope, refresh, idTok)
}

type redemption struct {
	ent         *clients.Entry
	p           *tokenParams
	now         time.Time
	jti         string
	ttl         time.Duration
	refreshHash string
	famID       string
	want        []string // the audience the request names (resource.Requested)
	amr         []string // the login's factors and level, for refreshed ID tokens
	acr         string
}

// redeemAudience sets g's audiences from those a single-use user grant
// authorized (the client's default audience when it named none): the
// access token's, which the token request may narrow (RFC 8707 §2.2), and
// the refresh family's, all of them the client may still hold.
func redeemAudience(r redemption, g *redeemed, granted []string, what string) *Error {
	if len(granted) == 0 {
		granted = []string{r.ent.Record.DefaultAudience}
	}
	var err error
	if g.aud, err = resource.Narrow(granted, r.want, r.ent.Record.Audiences, what); err == nil {
		g.famAud = g.aud
		if len(r.want) > 0 {
			g.famAud, err = resource.Narrow(granted, nil, r.ent.Record.Audiences, what)
		}
	}
	if err != nil {
		return targetError(err)
	}
	return nil
}

// redeemTx is the body of the redemption transaction. Refusals go in out;
// a returned error is a storage failure.
func (s *Server) redeemTx(tx storage.Tx, out *codeOutcome, r redemption) error {
	code, ckey, err := sessions.CodeTx(tx, r.p.code)
	if errors.Is(err, sessions.ErrNotFound) {
		out.err = errBadCode()
		return nil
	}
	if err != nil {
		return err
	}
	out.code = code
	if code.ClientID != r.ent.Record.ID || code.ClientInstance != r.ent.Record.Instance {
		// Not consumed: another client must not be able to destroy a
		// code it stole (its tokens would not be its own anyway).
		out.err = errBadCode()
		return nil
	}
	now := r.now.UnixNano()
	if code.UsedAt != 0 {
		out.err, out.reuse = errBadCode(), true
		return s.revokeCodeTokens(tx, out, &code, r.now)
	}
	code.UsedAt = now
	fail := func() error {
		out.err = errBadCode()
		return sessions.PutCodeTx(tx, ckey, &code)
	}
	if now >= code.ExpiresAt {
		return fail()
	}
	// RFC 6749 §4.1.3: identical to the authorization request's, when it had one.
	if (code.RedirectGiven || r.p.redirectURI != "") && r.p.redirectURI != code.RedirectURI {
		return fail()
	}
	// An operator who removed a redirect URI (a lost domain) ends the
	// codes already sent there too.
	if !r.ent.Record.RedirectAllowed(code.RedirectURI) {
		return fail()
	}
	switch {
	case code.Challenge != "":
		got := S256(r.p.codeVerifier)
		if r.p.codeVerifier == "" || subtle.ConstantTimeCompare([]byte(got), []byte(code.Challenge)) != 1 {
			return fail()
		}
	case r.p.codeVerifier != "":
		return fail() // a verifier without a challenge: PKCE downgrade (RFC 9700 §4.8.2)
	}
	if code.DPoPJKT != "" && code.DPoPJKT != r.p.dpopJKT { // RFC 9449 §10
		return fail()
	}
	user, err := users.Read(tx, code.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return fail()
	}
	if err != nil {
		return err
	}
	cutoff, err := getInt(tx, cutoffsBucket, code.UserID)
	if err != nil {
		return err
	}
	// The session that issued the code must still exist: logging out, and
	// a force logout (which deletes the user's sessions in the transaction
	// that sets the cutoff), kill the codes in flight too.
	live, err := sessions.SessionExistsTx(tx, code.Session)
	if err != nil {
		return err
	}
	if user.Disabled || !live {
		return fail()
	}
	out.user = user
	out.iat = max(r.now.Unix(), cutoff)
	var scope []string
	for _, sc := range SplitScope(code.Scope) {
		if slices.Contains(r.ent.Record.Scopes, sc) { // the client may have lost it since
			scope = append(scope, sc)
		}
	}
	out.scope, _ = userScope(&user.User, strings.Join(scope, " "), nil)
	if out.err = redeemAudience(r, &out.redeemed, code.Resources, "authorization code"); out.err != nil {
		return sessions.PutCodeTx(tx, ckey, &code) // spent, as by every refusal after its checks began
	}
	if out.claims, err = userClaims(&user, out.scope); err != nil {
		return err
	}
	code.AccessJTI, code.AccessExp = r.jti, out.iat+int64(r.ttl/time.Second)
	// A third-party client keeps access only if the consent page said so
	// and the user allowed it (the code records it); refreshes check the
	// consent again.
	if r.refreshHash != "" && (r.ent.Record.FirstParty || code.Offline) {
		r.amr, r.acr = code.AMR, code.ACR
		if err := s.startLoginFamilyTx(tx, r, user.ID, out.scope, out.famAud, code.AccessExp, code.AuthTime, code.SID, cutoff); err != nil {
			return err
		}
		code.Family, out.family = r.famID, r.famID
	}
	out.code = code
	return sessions.PutCodeTx(tx, ckey, &code)
}

// startLoginFamilyTx stores the refresh family a user's login starts (the
// code and device flows): the family with its first access token, its
// first refresh token and the user's index entry. flowCode: the user
// approved the client on a page, so a third-party client's refreshes need
// that consent still (refresh.go).
func (s *Server) startLoginFamilyTx(tx storage.Tx, r redemption, userID, scope string, aud []string, accessExp, authTime int64, sid string, cutoff int64) error {
	now := r.now.UnixNano()
	idle, absolute := s.refreshTTLs(r.ent)
	fam := familyRecord{ID: r.famID, ClientID: r.ent.Record.ID, ClientInstance: r.ent.Record.Instance, UserID: userID, Scope: scope, Aud: aud,
		CreatedAt: now, ExpiresAt: now + int64(absolute), IdleTTL: int64(idle), LastUsed: now, Current: r.refreshHash,
		AuthTime: authTime, SID: sid, LoginCutoff: &cutoff, Flow: flowCode, JKT: familyJKT(r.ent, r.p), AMR: r.amr, ACR: r.acr}
	fam.addAccess(r.jti, accessExp, r.now.Unix())
	tr, err := json.Marshal(refreshRecord{Family: fam.ID, IssuedAt: now})
	if err != nil {
		return err
	}
	if err := tx.Put(refreshTokensBucket, r.refreshHash, tr); err != nil {
		return err
	}
	if err := tx.Put(userFamiliesBucket, userID+"/"+fam.ID, nil); err != nil {
		return err
	}
	return storage.PutJSON(tx, refreshFamiliesBucket, fam.ID, &fam)
}

// revokeCodeTokens revokes what a reused code issued: its access token
// (denylist) and its refresh family with every token rotated from it.
func (s *Server) revokeCodeTokens(tx storage.Tx, out *codeOutcome, code *sessions.Code, now time.Time) error {
	denied, err := revokeIssued(tx, code.AccessJTI, code.AccessExp, code.Family, reasonCodeReuse, now)
	out.denied = out.denied || denied
	return err
}

// revokeIssued revokes what a single-use grant (a code, a device code)
// issued when it is presented again: its access token jti (denylisted
// until exp) and its refresh family with every token rotated from it.
// denied says the denylist changed.
func revokeIssued(tx storage.Tx, jti string, exp int64, family, reason string, now time.Time) (denied bool, err error) {
	if jti != "" && exp > now.Unix() {
		if err := tx.Put(denylistBucket, jti, strconv.AppendInt(nil, exp, 10)); err != nil {
			return false, err
		}
		denied = true
	}
	if family == "" {
		return denied, nil
	}
	f, err := getFamily(tx, family)
	if errors.Is(err, storage.ErrNotFound) {
		return denied, nil
	}
	if err != nil {
		return denied, err
	}
	if len(f.Access) > 0 {
		denied = true
	}
	return denied, revokeFamily(tx, &f, reason, now)
}

func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if s == want {
			return true
		}
	}
	return false
}
