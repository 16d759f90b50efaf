package authority

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// The RFC 8628 device authorization grant. The device asks for a code at
// the device authorization endpoint (client authentication as at the
// token endpoint; public clients with client_id only), the user types the
// user code on the hosted page (package login: /device), and the device
// polls the token endpoint with grant_type
// urn:ietf:params:oauth:grant-type:device_code. Every state lives in the
// store (sessions.DeviceCode), so any replica answers any step.

// DevicePath is the hosted page where the user enters the code (the
// verification_uri); package login serves it.
const DevicePath = "/device"

// Wrong user codes allowed per address per window on the hosted page
// (RFC 8628 §5.1). A user mistypes a few times; a guesser needs about
// 10^10 tries per live code.
const (
	userCodeFailures = 10
	userCodeWindow   = time.Minute
)

// deviceStartsPerIP bounds device authorizations per address per
// userCodeWindow: each is a stored record, anyone who knows a public
// client's id may ask, and every live code is one more target for a
// guesser.
const deviceStartsPerIP = 30

// deviceAuthorization is POST /oauth2/device_authorization (RFC 8628 §3.1,
// §3.2).
func (s *Server) deviceAuthorization(c echo.Context) error {
	r := c.Request()
	if err := s.canIssue(); err != nil {
		return errStale(err)
	}
	if r.Method != http.MethodPost {
		return &Error{Code: "invalid_request", Description: "the device authorization endpoint accepts only POST", Status: http.StatusMethodNotAllowed, allow: http.MethodPost}
	}
	p, err := readTokenParams(r)
	if err != nil {
		return err
	}
	ent, err := s.authenticate(c, r, &p)
	if err != nil {
		return err
	}
	if !slices.Contains(ent.Record.GrantTypes, clients.GrantDeviceCode) {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the device authorization grant", Status: http.StatusBadRequest}
	}
	scope, err := deviceScope(ent, p.scope)
	if err != nil {
		return err
	}
	var aud []string // the default audience unless the device names one
	if p.audience != "" || len(p.resources) > 0 {
		if aud, err = grantAudience(ent, &p); err != nil {
			return err
		}
	}
	now := s.cfg.Now()
	ip := c.RealIP()
	if wait := s.deviceStarts.RetryAfter(ip, now); wait > 0 {
		return &Error{Code: "temporarily_unavailable", Description: "too many device authorizations from this address; retry later", Status: http.StatusTooManyRequests,
			retryAfter: int((wait + time.Second - 1) / time.Second)}
	}
	s.deviceStarts.Fail(ip, now)
	ttl := sessions.DefaultDeviceCodeTTL
	deviceCode, userCode, err := sessions.NewDeviceCode(r.Context(), s.cfg.Store, sessions.DeviceCode{
		ClientID: ent.Record.ID, ClientInstance: ent.Record.Instance, Scope: scope, Resources: aud,
		Interval: int64(sessions.DefaultDeviceInterval / time.Second), ExpiresAt: now.Add(ttl).UnixNano(),
	})
	if err != nil {
		return ServerError(err)
	}
	verify := strings.TrimSuffix(s.cfg.Issuer, "/") + DevicePath
	shown := sessions.FormatUserCode(userCode)
	b, err := json.Marshal(struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int64  `json:"expires_in"`
		Interval                int64  `json:"interval"`
	}{deviceCode, shown, verify, verify + "?user_code=" + shown, int64(ttl / time.Second), int64(sessions.DefaultDeviceInterval / time.Second)})
	if err != nil {
		return ServerError(err)
	}
	h := c.Response().Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	return c.JSONBlob(http.StatusOK, b)
}

// deviceScope is the scope of a device authorization: what the client
// names, each one it is allowed, or its default scopes. The admin scope is
// refused as in a browser login: the user approves on a page, not by
// holding the scope's credentials on the device.
func deviceScope(ent *clients.Entry, requested string) (string, error) {
	var out []string
	if requested == "" {
		out = slices.Clone(ent.Record.DefaultScopes)
	}
	for _, sc := range strings.Fields(requested) {
		if !slices.Contains(ent.Record.Scopes, sc) {
			return "", errInvalidScope("scope " + sc + " is not allowed for this client")
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if slices.Contains(out, AdminScope) {
		return "", errInvalidScope("the admin scope cannot be granted by a device login")
	}
	return strings.Join(out, " "), nil
}

// UserCodeRetryAfter is how long ip must wait before it may try another
// user code on the hosted page; 0 when it may now.
func (s *Server) UserCodeRetryAfter(ip string) time.Duration {
	return s.userCodes.RetryAfter(ip, s.cfg.Now())
}

// UserCodeFailed counts a wrong user code from ip.
func (s *Server) UserCodeFailed(ip string) { s.userCodes.Fail(ip, s.cfg.Now()) }

// RFC 8628 §3.5 polling answers.
func errAuthorizationPending() *Error {
	return &Error{Code: "authorization_pending", Description: "the user has not yet approved this device", Status: http.StatusBadRequest}
}

func errSlowDown(interval int64) *Error {
	return &Error{Code: "slow_down", Description: fmt.Sprintf("polling too fast: wait at least %d seconds between requests", interval), Status: http.StatusBadRequest}
}

func errExpiredToken() *Error {
	return &Error{Code: "expired_token", Description: "the device code has expired: start again", Status: http.StatusBadRequest}
}

func errAccessDenied() *Error {
	return &Error{Code: "access_denied", Description: "the user denied this device", Status: http.StatusBadRequest}
}

// reasonDeviceCodeReuse is the family revocation reason when its device
// code is presented again.
const reasonDeviceCodeReuse = "device_code_reuse"

func errBadDeviceCode() *Error {
	return errInvalidGrant("device code is invalid or already used, or was issued to another client")
}

// deviceOutcome is what one run of the poll transaction decided.
type deviceOutcome struct {
	err    *Error
	reuse  bool
	denied bool
	d      sessions.DeviceCode
	redeemed
}

// deviceGrant is grant_type=urn:ietf:params:oauth:grant-type:device_code
// (RFC 8628 §3.4, §3.5). Each poll is one transaction that reads the code,
// records the poll (the interval is enforced across replicas) and, once
// approved, marks the code used together with the refresh family it
// starts: of any number of concurrent polls exactly one gets the tokens.
func (s *Server) deviceGrant(c echo.Context, ent *clients.Entry, p *tokenParams) error {
	if !slices.Contains(ent.Record.GrantTypes, clients.GrantDeviceCode) {
		return &Error{Code: "unauthorized_client", Description: "client is not allowed the device authorization grant", Status: http.StatusBadRequest}
	}
	if p.deviceCode == "" {
		return InvalidRequest("device_code is required")
	}
	key, r, refresh, err := s.prepareRedemption(ent, p)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var out deviceOutcome
	// Batch: many devices poll at once, and each poll is a write; the
	// function reports refusals in out, so one never rolls back another.
	err = s.cfg.Store.Batch(ctx, func(tx storage.Tx) error {
		out = deviceOutcome{}
		return s.pollTx(tx, &out, r)
	})
	if err != nil {
		return ServerError(fmt.Errorf("poll device code: %w", err))
	}
	if out.denied {
		s.feed.invalidate()
	}
	if out.reuse {
		s.log.LogAttrs(ctx, slog.LevelWarn, "device code reuse: its tokens are revoked",
			slog.String("client_id", ent.Record.ID), slog.String("user_id", out.d.UserID), slog.String("family", out.d.Family))
		s.Record(c, AuditEvent{Actor: ent.Record.ID, Action: "device_code.reuse_detected", Target: out.d.UserID, Outcome: "tokens_revoked",
			Detail: fmt.Sprintf("family=%s: a device code was presented again; the tokens issued from it are revoked", out.d.Family)})
	}
	if out.err != nil {
		return out.err
	}
	return s.issueRedeemed(c, ent, key, r, refresh, out.redeemed, clients.GrantDeviceCode,
		idTokenSpec{sub: out.d.UserID, sid: out.d.SID, authTime: out.d.AuthTime, amr: out.d.AMR, acr: out.d.ACR})
}

// pollTx is the body of the poll transaction. Refusals go in out (with
// the record's changes, such as the poll time, still written); a returned
// error is a storage failure.
func (s *Server) pollTx(tx storage.Tx, out *deviceOutcome, r redemption) error {
	d, dkey, err := sessions.DeviceCodeTx(tx, r.p.deviceCode)
	if errors.Is(err, sessions.ErrNotFound) {
		out.err = errBadDeviceCode()
		return nil
	}
	if err != nil {
		return err
	}
	if d.ClientID != r.ent.Record.ID || d.ClientInstance != r.ent.Record.Instance {
		// Untouched: another client must not be able to spend or slow
		// down a code it stole.
		out.err = errBadDeviceCode()
		return nil
	}
	now := r.now.UnixNano()
	if d.UsedAt != 0 {
		// Presented again: the device code leaked, so what it issued is
		// revoked (as for a reused authorization code, RFC 6749 §4.1.2).
		out.err, out.reuse = errBadDeviceCode(), d.Family != "" || d.AccessJTI != ""
		out.d = d
		out.denied, err = revokeIssued(tx, d.AccessJTI, d.AccessExp, d.Family, reasonDeviceCodeReuse, r.now)
		return err
	}
	if now >= d.ExpiresAt {
		out.err = errExpiredToken()
		return nil
	}
	if d.Status == sessions.DevicePending {
		// RFC 8628 §3.5: a poll sooner than the interval after the last
		// one raises the interval by 5 seconds, for this code from now on.
		tooSoon := d.LastPoll != 0 && now-d.LastPoll < d.Interval*int64(time.Second)
		d.LastPoll = now
		out.err = errAuthorizationPending()
		if tooSoon {
			d.Interval += int64(sessions.SlowDownStep / time.Second)
			out.err = errSlowDown(d.Interval)
		}
		return sessions.PutDeviceCodeTx(tx, dkey, &d)
	}
	d.UsedAt, d.LastPoll = now, now
	if d.Status != sessions.DeviceApproved {
		out.err = errAccessDenied()
		return sessions.PutDeviceCodeTx(tx, dkey, &d)
	}
	fail := func() error {
		out.err = errBadDeviceCode()
		return sessions.PutDeviceCodeTx(tx, dkey, &d)
	}
	user, err := users.Read(tx, d.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return fail()
	}
	if err != nil {
		return err
	}
	cutoff, err := getInt(tx, cutoffsBucket, d.UserID)
	if err != nil {
		return err
	}
	// As for authorization codes: the SSO session that approved must
	// still exist (logout and force logout end the approvals in flight).
	live, err := sessions.SessionExistsTx(tx, d.Session)
	if err != nil {
		return err
	}
	if user.Disabled || !live {
		return fail()
	}
	out.d, out.user = d, user
	out.iat = max(r.now.Unix(), cutoff)
	d.AccessJTI, d.AccessExp = r.jti, out.iat+int64(r.ttl/time.Second)
	var scope []string
	for _, sc := range SplitScope(d.Scope) {
		if slices.Contains(r.ent.Record.Scopes, sc) { // the client may have lost it since
			scope = append(scope, sc)
		}
	}
	// The privileged-scope rule (users.PermitScopes), as every grant.
	out.scope, _ = userScope(&user.User, strings.Join(scope, " "), nil)
	if out.err = redeemAudience(r, &out.redeemed, d.Resources, "device code"); out.err != nil {
		return sessions.PutDeviceCodeTx(tx, dkey, &d)
	}
	if out.claims, err = userClaims(&user, out.scope); err != nil {
		return err
	}
	if r.refreshHash != "" && (r.ent.Record.FirstParty || d.Offline) {
		r.amr, r.acr = d.AMR, d.ACR
		if err := s.startLoginFamilyTx(tx, r, user.ID, out.scope, out.famAud, d.AccessExp, d.AuthTime, d.SID, cutoff); err != nil {
			return err
		}
		out.family, d.Family = r.famID, r.famID
	}
	out.d = d
	return sessions.PutDeviceCodeTx(tx, dkey, &d)
}
