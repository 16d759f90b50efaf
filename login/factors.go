package login

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/totp"
	"github.com/signet-auth/signet/users"
)

// Second factors on the hosted pages: the one-time code asked after the
// password (for a user who set one up), the step-up of a password session
// when a request needs a second factor, and the account page where users
// set up an authenticator app. The factors themselves live in package mfa.

// Transaction kinds of the code form: after the password of an
// authorization request or of a device sign-in, or a step-up of a live
// session. The kind is inside the MAC'd transaction: a form cannot turn
// a step-up into a fresh sign-in or the reverse.
const (
	kindOTP        = "otp"
	kindDeviceOTP  = "device_otp"
	kindStepUp     = "stepup"
	kindDeviceUp   = "device_stepup"
	kindAccount    = "account"
	kindAcctLogin  = "account_login"
	kindAcctOTP    = "account_otp"
	kindConfirm    = "account_confirm"
	kindPasskeyReg = "passkey_add"
	kindPasskeyDel = "passkey_remove"
)

// factorPage is the data of otp.html and account.html.
type factorPage struct {
	Kind string
	// Account page.
	Step          string // "status", "confirm" or "done"
	HasTOTP       bool
	TOTPSince     string
	RecoveryLeft  int
	QR            template.URL // data:image/png, made here
	Secret        string       // grouped base32, to type by hand
	URI           string
	RecoveryCodes []string
	AccountURL    string
	Locked        string // why this session may not add factors
	// Requiring a second factor (enrol.go): the user must have one, by
	// Due when they have none; the forms that remove the app and
	// replace the recovery codes.
	Required      bool
	Due           string
	TOTPRemove    accountForm
	RecoveryRenew accountForm
	// Passkeys (passkey.go): the ceremony's options for the form's
	// data-options, and the user's passkeys.
	PasskeysOn     bool
	PasskeyOptions string
	PasskeyTxID    string
	PasskeyCSRF    string
	PasskeyAction  string
	RemoveTxID     string
	RemoveCSRF     string
	RemoveAction   string
	Passkeys       []passkeyView
	ScriptURL      string
}

type passkeyView struct{ Name, Created, ID string }

// accountForm is a one-button form of the account page: its transaction.
type accountForm struct{ Action, TxID, CSRF string }

func (h *Handler) addFactorTemplates() error {
	for _, name := range []string{"otp.html", "account.html"} {
		if h.tmpl.Lookup(name) != nil {
			continue
		}
		b, err := embedded.ReadFile("templates/" + name)
		if err != nil {
			return err
		}
		if _, err := h.tmpl.New(name).Parse(string(b)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (h *Handler) registerFactors(e *echo.Echo, sec echo.MiddlewareFunc) {
	if h.cfg.Factors == nil {
		return
	}
	e.POST("/login/otp", h.submitOTP, sec)
	e.GET("/account", h.account, sec)
	e.POST("/account/login", h.accountLogin, sec)
	e.POST("/account/totp", h.beginTOTP, sec)
	e.POST("/account/totp/confirm", h.confirmTOTP, sec)
	h.registerRequirement(e, sec)
	if h.passkeys != nil {
		e.POST("/account/passkey", h.addPasskey, sec)
		e.POST("/account/passkey/remove", h.removePasskey, sec)
		e.GET("/login/static/webauthn.js", h.serveWebAuthnJS, sec)
	}
}

// needsSecondFactor reports whether req needs more than sess proved: the
// client requires a second factor, acr_values asks for it (step-up), or
// the request asks for the admin scope.
func (h *Handler) needsSecondFactor(req *authzRequest, sess *sessions.Session) bool {
	need := req.acrMFA || req.client.RequireSecondFactor || slices.Contains(req.scopes, authority.AdminScope)
	return need && !sess.HasSecondFactor()
}

// hasSecondFactor reports whether userID has a second factor: an authenticator
// app, or a passkey while passkeys are on.
func (h *Handler) hasSecondFactor(ctx context.Context, userID string) (bool, error) {
	if h.cfg.Factors == nil {
		return false, nil
	}
	st, err := h.cfg.Factors.Status(ctx, userID)
	return st.TOTP || (st.Passkeys > 0 && h.passkeys != nil), err
}

// unmet is the answer to a request that needs a second factor the user has not set up.
func (h *Handler) unmet(c echo.Context, req *authzRequest) error {
	return h.redirectError(c, req, &oauthError{"unmet_authentication_requirements",
		"this sign-in needs a second factor and the user has none set up; they can add one at " + h.base + "/account"})
}

// passwordDone continues an authorization request after a correct
// password: to the code form when the user has a second factor, else a
// password session.
func (h *Handler) passwordDone(c echo.Context, req *authzRequest, user users.User) error {
	has, err := h.hasSecondFactor(c.Request().Context(), user.ID)
	if err != nil {
		return h.serverError(c, err)
	}
	if has {
		return h.showOTP(c, kindOTP, user, req.query, req.clientInstance, "", http.StatusOK)
	}
	// A second factor required of a user who has none (enrol.go): after
	// the grace period, set one up before any session starts; during it,
	// a reminder.
	d, err := h.demand(c.Request().Context(), user)
	if err != nil {
		return h.serverError(c, err)
	}
	now := h.cfg.Now()
	if d.MustEnrol(now, h.passkeys != nil) {
		return h.showEnrol(c, user, req.query, req.clientInstance, false)
	}
	sess, err := h.startSession(c, user.ID)
	if err != nil {
		return h.serverError(c, err)
	}
	if h.needsSecondFactor(req, &sess) {
		return h.unmet(c, req)
	}
	if d.InGrace(now, h.passkeys != nil) {
		return h.showDue(c, req, user, d.Due)
	}
	return h.afterLogin(c, req, sess)
}

// stepUp asks the user of a password session for their second factor.
func (h *Handler) stepUp(c echo.Context, req *authzRequest, sess sessions.Session) error {
	if req.promptNone {
		return h.redirectError(c, req, &oauthError{"interaction_required", "this request needs a second factor"})
	}
	ctx := c.Request().Context()
	user, err := h.auth.ActiveUser(ctx, sess.UserID)
	if err != nil {
		return h.serverError(c, err)
	}
	has, err := h.hasSecondFactor(ctx, user.ID)
	if err != nil {
		return h.serverError(c, err)
	}
	if !has {
		// Past the grace period of a requirement: set one up now (enrol.go).
		d, err := h.demand(ctx, user)
		if err != nil {
			return h.serverError(c, err)
		}
		if d.MustEnrol(h.cfg.Now(), h.passkeys != nil) {
			return h.showEnrol(c, user, req.query, req.clientInstance, true)
		}
		return h.unmet(c, req)
	}
	return h.showOTP(c, kindStepUp, user, req.query, req.clientInstance, "", http.StatusOK)
}

// deviceStepUp asks the user of a password session for their second
// factor before the device page's confirmation, for a client that
// requires one.
func (h *Handler) deviceStepUp(c echo.Context, cl clients.Client, d device, sess sessions.Session) error {
	ctx := c.Request().Context()
	user, err := h.auth.ActiveUser(ctx, sess.UserID)
	if err != nil {
		return h.serverError(c, err)
	}
	has, err := h.hasSecondFactor(ctx, user.ID)
	if err != nil {
		return h.serverError(c, err)
	}
	if !has {
		return h.errorPage(c, http.StatusForbidden, "A second factor is needed",
			clientName(cl)+" needs you to sign in with a second factor, and your account has none. Set up an authenticator app at "+h.base+"/account, then enter the code from your device again.", "")
	}
	return h.showOTP(c, kindDeviceUp, user, url.Values{"user_code": {d.code}}.Encode(), d.ClientInstance, "", http.StatusOK)
}

// showOTP starts a code transaction for user and renders the code form.
func (h *Handler) showOTP(c echo.Context, kind string, user users.User, query, instance, msg string, status int) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	data, err := h.beginAssertion(c.Request().Context(), user)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: kind, Browser: sessions.Hash(browser),
		Query: query, UserID: user.ID, ClientInstance: instance, Data: data})
	if err != nil {
		return h.serverError(c, err)
	}
	return h.renderOTP(c, tx, user, msg, status)
}

func (h *Handler) renderOTP(c echo.Context, tx sessions.Transaction, user users.User, msg string, status int) error {
	p := h.newPage("Enter your code")
	p.Heading = "Enter your code"
	p.Username, p.Error = user.Username, msg
	p.ActionURL, p.TxID, p.CSRF = h.path+"/login/otp", tx.ID, tx.CSRF
	if validRestart(tx.Query) {
		p.Restart = tx.Query
	}
	st, err := h.cfg.Factors.Status(c.Request().Context(), user.ID)
	if err != nil {
		return h.serverError(c, err)
	}
	p.Factor = &factorPage{Kind: tx.Kind, HasTOTP: st.TOTP, PasskeyOptions: ceremonyOptions(tx.Data)}
	if p.Factor.PasskeyOptions != "" {
		p.Factor.ScriptURL = h.allowWebAuthn(c)
	}
	return h.render(c, status, "otp.html", p)
}

// checkCode checks a one-time code or a recovery code of user under the
// password's rate limits. A refusal is rendered by again and ok is false.
func (h *Handler) checkCode(c echo.Context, user users.User, code string, check func(code string) error, again func(msg string, status int) error) (bool, error) {
	if code == "" {
		return false, again("Enter the code from your authenticator app, or one of your recovery codes.", http.StatusBadRequest)
	}
	err := h.auth.CheckSecondFactor(user.Username, c.RealIP(), func() (bool, error) {
		err := check(code)
		if errors.Is(err, mfa.ErrBadCode) {
			return false, nil
		}
		return err == nil, err
	})
	if msg, locked := h.lockedOut(c, err); locked {
		return false, again(msg, http.StatusTooManyRequests)
	}
	switch {
	case errors.Is(err, authority.ErrBadLogin):
		return false, again("That code is not valid, or was already used. Wait for the next code and try again.", http.StatusUnauthorized)
	case err != nil:
		return false, h.serverError(c, err)
	}
	return true, nil
}

// verify checks a sign-in code: a recovery code by its shape, else a TOTP code.
func (h *Handler) verify(ctx context.Context, userID string) func(string) error {
	return func(code string) error {
		if mfa.LooksLikeRecoveryCode(code) {
			return h.cfg.Factors.UseRecoveryCode(ctx, userID, code)
		}
		return h.cfg.Factors.VerifyTOTP(ctx, userID, code)
	}
}

// submitOTP is POST /login/otp.
func (h *Handler) submitOTP(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Start again from the application.", "")
	}
	kind := c.Request().PostFormValue("kind")
	if kind != kindOTP && kind != kindDeviceOTP && kind != kindStepUp && kind != kindDeviceUp && kind != kindAcctOTP && kind != kindAcctUp {
		kind = kindOTP // checkTransaction refuses the mismatch
	}
	tx, ok, err := h.checkTransaction(c, kind)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	expired := func() error {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"You were signed out, or the account changed, since this page was shown. Start again to continue.", "")
	}
	user, err := h.auth.ActiveUser(ctx, tx.UserID)
	if err != nil {
		return expired()
	}
	// Where the sign-in continues, resolved before the code is spent.
	var next func(sessions.Session) error
	device, stepUp := kind == kindDeviceOTP || kind == kindDeviceUp, kind == kindStepUp || kind == kindDeviceUp || kind == kindAcctUp
	switch {
	case kind == kindAcctOTP || kind == kindAcctUp:
		next = func(sessions.Session) error { return c.Redirect(http.StatusSeeOther, h.path+"/account") }
	case device:
		q, _ := url.ParseQuery(tx.Query)
		d, found, err := h.pendingDevice(c, q.Get("user_code"))
		if err != nil {
			return h.serverError(c, err)
		}
		if !found {
			return h.errorPage(c, http.StatusBadRequest, "This code has expired",
				"The code has expired or was already used. Start again on your device to get a new code.", "")
		}
		cl, ok, err := h.deviceClient(c, d)
		if !ok {
			return err
		}
		next = func(s sessions.Session) error { return h.deviceShowConsent(c, cl, d, s) }
	default:
		req, ok, err := h.reopen(c, tx)
		if !ok {
			return err
		}
		next = func(s sessions.Session) error { return h.afterLogin(c, req, s) }
	}
	now := h.cfg.Now().Unix()
	factors := []sessions.Factor{{Method: sessions.MethodPassword, At: now}}
	if stepUp {
		// The session the step-up was asked for must still be this user's.
		sess, _, live, err := h.currentSession(ctx, c)
		if err != nil {
			return h.serverError(c, err)
		}
		if !live || sess.UserID != tx.UserID {
			return expired()
		}
		factors = slices.Clone(sess.FactorList())
	}
	// A passkey's answer, or a code typed in.
	method, input, check := sessions.MethodOTP, strings.TrimSpace(c.Request().PostFormValue("code")), h.verify(ctx, user.ID)
	if cred := c.Request().PostFormValue("credential"); cred != "" {
		method, input, check = sessions.MethodPasskey, cred, h.verifyPasskey(ctx, user, tx.Data)
	}
	ok, err = h.checkCode(c, user, input, check, func(msg string, status int) error {
		return h.renderOTP(c, tx, user, msg, status)
	})
	if !ok {
		return err
	}
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This sign-in was already completed. Start again to continue.", "")
	}
	// A new session (new cookie) with the factors: the password session
	// before the step-up ends, so its cookie cannot be replayed.
	sess, err := h.startSession(c, user.ID, append(factors, sessions.Factor{Method: method, At: now})...)
	if err != nil {
		return h.serverError(c, err)
	}
	return next(sess)
}

// account is GET /account: the user's second factors.
func (h *Handler) account(c echo.Context) error {
	ctx := c.Request().Context()
	sess, _, live, err := h.currentSession(ctx, c)
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Your account")
	p.Heading = "Your account"
	p.Factor = &factorPage{Step: "status"}
	if !live {
		return h.showAccountLogin(c, "", "", "", http.StatusOK)
	}
	user, err := h.auth.ActiveUser(ctx, sess.UserID)
	if err != nil {
		return h.serverError(c, err)
	}
	st, err := h.cfg.Factors.Status(ctx, user.ID)
	if err != nil {
		return h.serverError(c, err)
	}
	p.Username = user.Username
	p.Factor.HasTOTP, p.Factor.RecoveryLeft = st.TOTP, st.RecoveryCodes
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	locked, err := h.factorsLocked(ctx, &sess)
	if err != nil {
		return h.serverError(c, err)
	}
	if st.TOTP {
		p.Factor.TOTPSince = st.TOTPSince.UTC().Format(time.DateOnly)
	}
	if locked {
		p.Factor.Locked = lockedText
	}
	if h.passkeys != nil {
		list, err := h.cfg.Factors.Passkeys(ctx, user.ID)
		if err != nil {
			return h.serverError(c, err)
		}
		p.Factor.PasskeysOn = true
		for _, k := range list {
			p.Factor.Passkeys = append(p.Factor.Passkeys, passkeyView{Name: k.Name, Created: k.CreatedAt.UTC().Format(time.DateOnly),
				ID: base64.RawURLEncoding.EncodeToString(k.Credential.ID)})
		}
	}
	if err := h.accountRequirement(c, user, &p); err != nil {
		return err
	}
	if locked {
		return h.render(c, http.StatusOK, "account.html", p)
	}
	if st.TOTP {
		if err := h.accountTOTPForms(c, user, browser, &p); err != nil {
			return h.serverError(c, err)
		}
	} else {
		tx, err := h.sess.NewTransaction(ctx, sessions.Transaction{Kind: kindAccount, Browser: sessions.Hash(browser), UserID: user.ID})
		if err != nil {
			return h.serverError(c, err)
		}
		p.ActionURL, p.TxID, p.CSRF = h.path+"/account/totp", tx.ID, tx.CSRF
	}
	if h.passkeys != nil {
		data, _, err := h.passkeyRegistration(ctx, user)
		if err != nil {
			return h.serverError(c, err)
		}
		tx, err := h.sess.NewTransaction(ctx, sessions.Transaction{Kind: kindPasskeyReg, Browser: sessions.Hash(browser), UserID: user.ID, Data: data})
		if err != nil {
			return h.serverError(c, err)
		}
		p.Factor.PasskeyOptions, p.Factor.PasskeyTxID, p.Factor.PasskeyCSRF = ceremonyOptions(data), tx.ID, tx.CSRF
		if len(p.Factor.Passkeys) > 0 {
			del, err := h.sess.NewTransaction(ctx, sessions.Transaction{Kind: kindPasskeyDel, Browser: sessions.Hash(browser), UserID: user.ID})
			if err != nil {
				return h.serverError(c, err)
			}
			p.Factor.RemoveTxID, p.Factor.RemoveCSRF, p.Factor.RemoveAction = del.ID, del.CSRF, h.path+"/account/passkey/remove"
		}
		p.Factor.ScriptURL, p.Factor.PasskeyAction = h.allowWebAuthn(c), h.path+"/account/passkey"
	}
	return h.render(c, http.StatusOK, "account.html", p)
}

// showAccountLogin is the sign-in form of the account page, for a browser
// without a session (the other sign-in forms belong to an application's
// request).
func (h *Handler) showAccountLogin(c echo.Context, username, msg, field string, status int) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	data, err := h.beginDiscoverable() // the passkey button (passkeylogin.go)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: kindAcctLogin, Browser: sessions.Hash(browser), Data: data})
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Sign in")
	p.Heading, p.ClientName = "Sign in", "your account"
	p.ActionURL, p.TxID, p.CSRF = h.path+"/account/login", tx.ID, tx.CSRF
	p.Username, p.Error, p.ErrorField = username, msg, field
	p.External, p.NoPassword = h.externalButtons(), !h.passwordLogin()
	h.setPasskeyButton(c, &p, tx)
	return h.render(c, status, "login.html", p)
}

// accountLogin is POST /account/login: the password, then the code when
// the user has an app, then the account page.
func (h *Handler) accountLogin(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Open your account page again.", "")
	}
	tx, ok, err := h.checkTransaction(c, kindAcctLogin)
	if !ok {
		return err
	}
	if !h.passwordLogin() { // as at the sign-in page (forms.go): the form is not shown, and its POST is refused
		return h.errorPage(c, http.StatusForbidden, "Password sign-in is off", "This server does not accept passwords: use one of the sign-in buttons.", "")
	}
	user, ok, err := h.checkPassword(c, func(username, msg, field string, status int) error {
		return h.showAccountLogin(c, username, msg, field, status)
	})
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This sign-in was already completed. Open your account page again.", "")
	}
	if has, err := h.hasSecondFactor(ctx, user.ID); err != nil {
		return h.serverError(c, err)
	} else if has {
		return h.showOTP(c, kindAcctOTP, user, "", "", "", http.StatusOK)
	}
	if _, err := h.startSession(c, user.ID); err != nil {
		return h.serverError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, h.path+"/account")
}

// accountUser checks an account form: its transaction, and that the
// browser's session is still the user's it was shown to.
func (h *Handler) accountUser(c echo.Context, kind string) (sessions.Transaction, users.User, bool, error) {
	if err := parseForm(c); err != nil {
		return sessions.Transaction{}, users.User{}, false, h.errorPage(c, http.StatusBadRequest, "Form is not valid", "The form could not be read. Open your account page again.", "")
	}
	tx, ok, err := h.checkTransaction(c, kind)
	if !ok {
		return tx, users.User{}, false, err
	}
	ctx := c.Request().Context()
	sess, _, live, err := h.currentSession(ctx, c)
	if err != nil {
		return tx, users.User{}, false, h.serverError(c, err)
	}
	var user users.User
	if live && sess.UserID == tx.UserID {
		user, err = h.auth.ActiveUser(ctx, sess.UserID)
	}
	if !live || sess.UserID != tx.UserID || err != nil {
		return tx, user, false, h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"You were signed out, or signed in as someone else, since this page was shown. Open your account page again.", "")
	}
	if locked, err := h.factorsLocked(ctx, &sess); err != nil || locked {
		if err != nil {
			return tx, user, false, h.serverError(c, err)
		}
		return tx, user, false, h.errorPage(c, http.StatusForbidden, "Sign in with your second factor first", lockedText, "")
	}
	return tx, user, true, nil
}

// factorsLocked reports whether sess may not add second factors: its user
// has one and the session was proven by the password alone (someone who
// only knows the password, or holds a stolen password session, must not
// add a factor of their own).
func (h *Handler) factorsLocked(ctx context.Context, sess *sessions.Session) (bool, error) {
	if sess.HasSecondFactor() {
		return false, nil
	}
	return h.hasSecondFactor(ctx, sess.UserID)
}

const lockedText = "Your account has a second factor, and this browser signed in without it. Sign in again with your code or passkey (open an application and sign in, or sign out and open this page), then add factors here."

// beginTOTP is POST /account/totp: a new secret, shown as a QR code and as text.
func (h *Handler) beginTOTP(c echo.Context) error {
	_, user, ok, err := h.accountUser(c, kindAccount)
	if !ok {
		return err
	}
	secret, err := h.cfg.Factors.BeginTOTP(c.Request().Context(), user.ID)
	if errors.Is(err, mfa.ErrEnrolled) {
		return c.Redirect(http.StatusSeeOther, h.path+"/account")
	}
	if err != nil {
		return h.serverError(c, err)
	}
	return h.showConfirm(c, user, secret, "", http.StatusOK)
}

func (h *Handler) showConfirm(c echo.Context, user users.User, secret []byte, msg string, status int) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: kindConfirm, Browser: sessions.Hash(browser), UserID: user.ID})
	if err != nil {
		return h.serverError(c, err)
	}
	p, err := h.confirmPage(user, secret, msg)
	if err != nil {
		return h.serverError(c, err)
	}
	p.ActionURL, p.TxID, p.CSRF = h.path+"/account/totp/confirm", tx.ID, tx.CSRF
	return h.render(c, status, "account.html", p)
}

// confirmPage is the set-up page of secret: its QR code, the key to type
// and the field of the first code.
func (h *Handler) confirmPage(user users.User, secret []byte, msg string) (page, error) {
	uri := totp.URI(h.cfg.ProductName, user.Username, secret)
	png, err := qrcode.Encode(uri, qrcode.Medium, 256)
	if err != nil {
		return page{}, fmt.Errorf("QR code: %w", err)
	}
	p := h.newPage("Set up an authenticator app")
	p.Heading = "Set up an authenticator app"
	p.Username, p.Error = user.Username, msg
	// A data: URI made here from our own bytes: the CSP allows img-src data:.
	p.Factor = &factorPage{Step: "confirm", QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)),
		Secret: groupSecret(totp.Encode(secret)), URI: uri}
	return p, nil
}

// groupSecret splits the secret in groups of four to type it.
func groupSecret(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// confirmTOTP is POST /account/totp/confirm: the first code turns the
// enrolment on and shows the recovery codes, once.
func (h *Handler) confirmTOTP(c echo.Context) error {
	_, user, ok, err := h.accountUser(c, kindConfirm)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	var codes []string
	gone := false // confirmed meanwhile (a second submission) or reset
	ok, err = h.checkCode(c, user, strings.TrimSpace(c.Request().PostFormValue("code")), func(code string) error {
		var err error
		codes, err = h.cfg.Factors.ConfirmTOTP(ctx, user.ID, code)
		if errors.Is(err, mfa.ErrEnrolled) || errors.Is(err, mfa.ErrNoEnrolment) {
			gone, err = true, nil
		}
		return err
	}, func(msg string, status int) error {
		secret, err := h.cfg.Factors.PendingTOTP(ctx, user.ID)
		if err != nil {
			return c.Redirect(http.StatusSeeOther, h.path+"/account")
		}
		return h.showConfirm(c, user, secret, msg, status)
	})
	if !ok {
		return err
	}
	if gone {
		return c.Redirect(http.StatusSeeOther, h.path+"/account")
	}
	p := h.newPage("Save your recovery codes")
	p.Heading = "Save your recovery codes"
	p.Username = user.Username
	p.Factor = &factorPage{Step: "done", HasTOTP: true, RecoveryCodes: codes, AccountURL: h.path + "/account"}
	return h.render(c, http.StatusOK, "account.html", p)
}
