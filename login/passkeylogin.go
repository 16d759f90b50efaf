package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/users"
)

// Sign-in with a passkey alone (no username, no password): the sign-in
// page carries a discoverable-credential challenge (WebAuthn
// BeginDiscoverableLogin, user verification required) in its MAC'd,
// single-use, expiring login transaction, as the code form carries its
// own; the browser's assertion names its user by the user handle (the
// user id, waUser), and must be signed by a passkey of that user. The key
// and the authenticator's check of its user (a PIN or a biometric) are two
// factors: the session has amr ["swk", "user", "mfa"] and the MFA acr.

// passkeySignIn is the passkey button's form on login.html.
type passkeySignIn struct {
	Options   string // the ceremony's options, for data-options
	Action    string
	Kind      string // the transaction's kind: login or account_login
	ScriptURL string
}

// passwordless reports whether the sign-in pages offer passkeys alone.
func (h *Handler) passwordless() bool {
	return h.passkeys != nil && !h.cfg.PasskeysSecondFactorOnly
}

// beginDiscoverable makes the ceremony of a passkey sign-in without a
// user, for a login transaction's Data; nil when passkeys do not sign in.
func (h *Handler) beginDiscoverable() (json.RawMessage, error) {
	if !h.passwordless() {
		return nil, nil
	}
	opts, sd, err := h.passkeys.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("passkey sign-in options: %w", err)
	}
	return marshalCeremony(sd, opts)
}

// setPasskeyButton puts tx's passkey sign-in on p, and lets the page run
// webauthn.js.
func (h *Handler) setPasskeyButton(c echo.Context, p *page, tx sessions.Transaction) {
	opts := ceremonyOptions(tx.Data)
	if opts == "" || !h.passwordless() {
		return
	}
	p.Passkey = &passkeySignIn{Options: opts, Action: h.path + "/login/passkey", Kind: tx.Kind, ScriptURL: h.allowWebAuthn(c)}
}

// submitPasskeyLogin is POST /login/passkey: the assertion of the sign-in
// page's passkey button, for an authorization request's sign-in (then
// consent and the code, as after a password and a second factor), the
// account page's, or the device page's (then its confirmation).
func (h *Handler) submitPasskeyLogin(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Start again from the application.", "")
	}
	kind := c.Request().PostFormValue("kind")
	if kind != kindAcctLogin && kind != kindDeviceLogin {
		kind = "login" // checkTransaction refuses a mismatch
	}
	tx, ok, err := h.checkTransaction(c, kind)
	if !ok {
		return err
	}
	// again shows the sign-in page of tx once more with msg; next goes on
	// after the sign-in.
	var again func(msg string, status int) error
	var next func(sessions.Session) error
	restart := "" // only an authorization request can be started again
	switch kind {
	case kindAcctLogin:
		again = func(msg string, status int) error { return h.showAccountLogin(c, "", msg, "", status) }
		next = func(sessions.Session) error { return c.Redirect(http.StatusSeeOther, h.path+"/account") }
	case kindDeviceLogin:
		d, cl, ok, err := h.txDevice(c, tx)
		if !ok {
			return err
		}
		again = func(msg string, status int) error { return h.deviceShowLogin(c, cl, d.code, "", msg, "", status) }
		// The confirmation asks for a second factor the client or the
		// requirement needs, as after the password (device.go).
		next = func(s sessions.Session) error { return h.deviceShowConsent(c, cl, d, s) }
	default:
		req, ok, err := h.reopen(c, tx)
		if !ok {
			return err
		}
		again = func(msg string, status int) error { return h.renderLogin(c, req, tx, "", msg, "", status) }
		next = func(s sessions.Session) error { return h.afterLogin(c, req, s) }
		restart = tx.Query
	}
	cred := c.Request().PostFormValue("credential")
	if cred == "" { // the button without script, or a browser without passkeys
		return again("Your browser did not answer with a passkey. Sign in another way, or use a browser that supports passkeys.", http.StatusBadRequest)
	}
	user, ok, err := h.checkPasskeySignIn(c, tx.Data, cred, again)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This sign-in was already completed. Start again to continue.", restart)
	}
	now := h.cfg.Now().Unix()
	sess, err := h.startSession(c, user.ID, sessions.Factor{Method: sessions.MethodPasskey, At: now}, sessions.Factor{Method: sessions.MethodUser, At: now})
	if err != nil {
		return h.serverError(c, err)
	}
	return next(sess)
}

// errDisabled is a valid assertion of a disabled user's passkey.
var errDisabled = errors.New("login: the passkey's user is disabled")

// checkPasskeySignIn verifies a discoverable assertion against the
// transaction's challenge, under the password's failed-login limits (the
// user's, or the address's when the user handle names nobody). A
// refusal is rendered by again, or as a page, and ok is false.
func (h *Handler) checkPasskeySignIn(c echo.Context, data json.RawMessage, credential string, again func(string, int) error) (users.User, bool, error) {
	ctx := c.Request().Context()
	var user users.User
	username := "" // no known user: counted on the address (and under the empty name)
	parsed, perr := protocol.ParseCredentialRequestResponseBytes([]byte(credential))
	if perr == nil && len(parsed.Response.UserHandle) <= 64 { // WebAuthn's bound: longer names nobody
		// A disabled user's assertion is still checked: only its holder
		// learns that the account is disabled.
		u, err := h.auth.Users().Get(ctx, string(parsed.Response.UserHandle))
		switch {
		case err == nil:
			user, username = u, u.Username
		case !isNotFound(err):
			return user, false, h.serverError(c, err)
		}
	}
	err := h.auth.CheckPasskeySignIn(username, c.RealIP(), func() (bool, error) {
		if perr != nil || username == "" {
			return false, nil
		}
		err := h.verifyDiscoverable(ctx, user, data, parsed)
		if errors.Is(err, mfa.ErrBadCode) {
			return false, nil
		}
		return err == nil, err
	})
	if msg, locked := h.lockedOut(c, err); locked {
		return user, false, again(msg, http.StatusTooManyRequests)
	}
	switch {
	case errors.Is(err, authority.ErrBadLogin):
		return user, false, again("This passkey was not accepted: it is not registered here for an account, it did not verify you (with your PIN, fingerprint or face), or the page was old. Try again, or sign in another way.", http.StatusUnauthorized)
	case errors.Is(err, errDisabled):
		return user, false, h.errorPage(c, http.StatusForbidden, "Your account is disabled", "The account of this passkey is disabled. Contact the operator of this server.", "")
	case err != nil:
		return user, false, h.serverError(c, err)
	}
	return user, true, nil
}

// verifyDiscoverable checks the assertion of a passkey of user (whom its
// user handle names) against the ceremony in data. Any refusal is
// mfa.ErrBadCode; a good assertion of a disabled user is errDisabled.
func (h *Handler) verifyDiscoverable(ctx context.Context, user users.User, data json.RawMessage, parsed *protocol.ParsedCredentialAssertionData) error {
	var cm ceremony
	if len(data) == 0 || json.Unmarshal(data, &cm) != nil || cm.Session.UserVerification != protocol.VerificationRequired {
		return mfa.ErrBadCode // not a passwordless ceremony (the code form's, or none)
	}
	w, _, err := h.waUser(ctx, user)
	if err != nil {
		return err
	}
	// The library checks that the user handle is this user's id and that
	// the credential is one of their passkeys, then the signature, the
	// challenge, the origin, the RP ID and the UV flag (the session asks
	// for it).
	cred, err := h.passkeys.ValidateDiscoverableLogin(func(_, _ []byte) (webauthn.User, error) { return w, nil }, cm.Session, parsed)
	if err == nil && !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		err = errors.New("no user verification") // never reached while the session requires it; the sign-in rests on it
	}
	if err != nil {
		h.log.LogAttrs(ctx, slog.LevelInfo, "passkey sign-in refused", slog.String("user_id", user.ID), slog.String("err", err.Error()))
		return mfa.ErrBadCode
	}
	if err := h.usedPasskey(ctx, user.ID, *cred, parsed.Response.AuthenticatorData.Counter); err != nil {
		return err
	}
	if user.Disabled {
		return errDisabled
	}
	return nil
}
