package login

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/users"
)

// Requiring a second factor (mfa.Policy, users.User.RequireSecondFactor;
// the rule itself is authority.Server.FactorDemand, which the password
// grant asks too): a user who has a factor is asked for it at every
// sign-in; a user who has none is reminded after the password during the
// grace period, and after it sets one up before any session starts or
// any code is issued. The account page lets users remove their app and
// replace their recovery codes after a recent second factor, and refuses
// to remove the last factor of a user who must have one.

// Transaction kinds of these pages.
const (
	// kindEnrol: set up an authenticator app before the sign-in goes on.
	kindEnrol = "enrol"
	// kindContinue: go on with the sign-in after the reminder or the
	// enrolment (a session is live by then).
	kindContinue = "continue"
	// kindAcctUp: a second factor again for the account page, whose
	// session proved one too long ago.
	kindAcctUp   = "account_stepup"
	kindTOTPDel  = "totp_remove"
	kindRecovery = "recovery_renew"
)

// recentFactor is how long a session's second factor counts for removing
// the app or replacing the recovery codes: a browser left signed in is
// not enough to strip the account of its factor.
const recentFactor = 10 * time.Minute

// enrolData is the Data of a kindEnrol transaction.
type enrolData struct {
	// StepUp: the enrolment completes the browser's live session, whose
	// factors it keeps; else it follows a password just checked.
	StepUp bool `json:"step_up,omitempty"`
	// Ceremony is the passkey registration the page offers beside the
	// app (passkey.go), when passkeys are on.
	Ceremony json.RawMessage `json:"ceremony,omitempty"`
}

func (h *Handler) registerRequirement(e *echo.Echo, sec echo.MiddlewareFunc) {
	e.POST("/login/enrol", h.submitEnrol, sec)
	e.POST("/login/continue", h.submitContinue, sec)
	e.POST("/account/totp/remove", h.removeTOTP, sec)
	e.POST("/account/recovery", h.renewRecovery, sec)
}

// demand is what the requirement asks of user now.
func (h *Handler) demand(ctx context.Context, user users.User) (mfa.Demand, error) {
	if h.cfg.Factors == nil {
		return mfa.Demand{}, nil // no second factors: none can be required
	}
	return h.auth.FactorDemand(ctx, &user)
}

// policyNeeds reports whether the requirement asks sess for a second
// factor it did not prove: its user has one (asked at every sign-in), or
// has none and the grace period is over (they set one up).
func (h *Handler) policyNeeds(ctx context.Context, sess *sessions.Session) (bool, error) {
	if h.cfg.Factors == nil || sess.HasSecondFactor() {
		return false, nil
	}
	user, err := h.auth.ActiveUser(ctx, sess.UserID)
	if err != nil || !h.auth.FactorRequired(&user) {
		return false, err
	}
	d, err := h.demand(ctx, user)
	return d.Required && !d.InGrace(h.cfg.Now(), h.passkeys != nil), err
}

// sessionNeeds reports whether req or the requirement asks sess for a
// second factor it did not prove.
func (h *Handler) sessionNeeds(ctx context.Context, req *authzRequest, sess *sessions.Session) (bool, error) {
	if h.needsSecondFactor(req, sess) {
		return true, nil
	}
	return h.policyNeeds(ctx, sess)
}

// continueSession goes on with req for the browser's live session: a
// second factor first when one is needed, then consent and the code.
func (h *Handler) continueSession(c echo.Context, req *authzRequest, sess sessions.Session) error {
	need, err := h.sessionNeeds(c.Request().Context(), req, &sess)
	if err != nil {
		return h.serverError(c, err)
	}
	if need {
		return h.stepUp(c, req, sess)
	}
	return h.afterLogin(c, req, sess)
}

// showDue is the reminder after the password of a user who must set up a
// second factor by due: a link to the account page, and a button that
// goes on with the sign-in.
func (h *Handler) showDue(c echo.Context, req *authzRequest, user users.User, due time.Time) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: kindContinue, Browser: sessions.Hash(browser),
		Query: req.query, UserID: user.ID, ClientInstance: req.clientInstance})
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Set up a second factor")
	p.Heading = "Set up a second factor"
	p.setClient(req.client)
	p.Username = user.Username
	p.ActionURL, p.TxID, p.CSRF = h.path+"/login/continue", tx.ID, tx.CSRF
	p.Factor = &factorPage{Step: "due", Required: true, Due: formatDue(due), AccountURL: h.path + "/account"}
	return h.render(c, http.StatusOK, "account.html", p)
}

func formatDue(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 UTC") }

// showEnrol starts the set-up of an authenticator app that a sign-in
// needs before it goes on: after the password (stepUp false: no session
// yet) or for the browser's live session.
func (h *Handler) showEnrol(c echo.Context, user users.User, query, instance string, stepUp bool) error {
	ctx := c.Request().Context()
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	secret, err := h.cfg.Factors.BeginTOTP(ctx, user.ID)
	if errors.Is(err, mfa.ErrEnrolled) { // set up meanwhile: sign in with it
		return h.errorPage(c, http.StatusConflict, "Start again", "Your account has an authenticator app now. Start again to sign in with it.", query)
	}
	if err != nil {
		return h.serverError(c, err)
	}
	ed := enrolData{StepUp: stepUp}
	if h.passkeys != nil { // or a passkey, where they are on
		if ed.Ceremony, _, err = h.passkeyRegistration(ctx, user); err != nil {
			return h.serverError(c, err)
		}
	}
	data, _ := json.Marshal(ed)
	tx, err := h.sess.NewTransaction(ctx, sessions.Transaction{Kind: kindEnrol, Browser: sessions.Hash(browser),
		Query: query, UserID: user.ID, ClientInstance: instance, Data: data})
	if err != nil {
		return h.serverError(c, err)
	}
	return h.renderEnrol(c, tx, user, secret, "", http.StatusOK)
}

func (h *Handler) renderEnrol(c echo.Context, tx sessions.Transaction, user users.User, secret []byte, msg string, status int) error {
	p, err := h.confirmPage(user, secret, msg)
	if err != nil {
		return h.serverError(c, err)
	}
	p.Title, p.Heading = "Set up a second factor", "Set up a second factor"
	p.Message = "Your account must have a second factor, and the time to set one up has passed. Set up an authenticator app now to finish signing in."
	p.ActionURL, p.TxID, p.CSRF = h.path+"/login/enrol", tx.ID, tx.CSRF
	p.Factor.Required = true
	var data enrolData
	if len(tx.Data) > 0 && json.Unmarshal(tx.Data, &data) == nil && h.passkeys != nil {
		if p.Factor.PasskeyOptions = ceremonyOptions(data.Ceremony); p.Factor.PasskeyOptions != "" {
			p.Factor.PasskeyTxID, p.Factor.PasskeyCSRF, p.Factor.PasskeyAction = tx.ID, tx.CSRF, h.path+"/login/enrol"
			p.Factor.ScriptURL = h.allowWebAuthn(c)
		}
	}
	return h.render(c, status, "account.html", p)
}

// submitEnrol is POST /login/enrol: the first code of the new app proves
// the user holds it, and counts as the second factor of this sign-in; the
// recovery codes are shown once, then the sign-in goes on.
func (h *Handler) submitEnrol(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Start again from the application.", "")
	}
	tx, ok, err := h.checkTransaction(c, kindEnrol)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	expired := func() error {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"You were signed out, the account changed, or this page was already used since it was shown. Start again to continue.", tx.Query)
	}
	user, err := h.auth.ActiveUser(ctx, tx.UserID)
	if err != nil {
		return expired()
	}
	req, ok, err := h.reopen(c, tx)
	if !ok {
		return err
	}
	var data enrolData
	if len(tx.Data) > 0 {
		if err := json.Unmarshal(tx.Data, &data); err != nil {
			return expired()
		}
	}
	now := h.cfg.Now().Unix()
	factors := []sessions.Factor{{Method: sessions.MethodPassword, At: now}}
	if data.StepUp {
		// The session the enrolment was asked for must still be this user's.
		sess, _, live, err := h.currentSession(ctx, c)
		if err != nil {
			return h.serverError(c, err)
		}
		if !live || sess.UserID != tx.UserID {
			return expired()
		}
		factors = slices.Clone(sess.FactorList())
	}
	if cred := c.Request().PostFormValue("credential"); cred != "" {
		return h.enrolPasskey(c, tx, req, user, data, cred, factors, now)
	}
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
			return expired()
		}
		return h.renderEnrol(c, tx, user, secret, msg, status)
	})
	if !ok {
		return err
	}
	if gone {
		return expired()
	}
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return expired()
	}
	// A new session (new cookie) with the new factor: a password session
	// the enrolment was asked for ends.
	sess, err := h.startSession(c, user.ID, append(factors, sessions.Factor{Method: sessions.MethodOTP, At: now})...)
	if err != nil {
		return h.serverError(c, err)
	}
	cont, err := h.sess.NewTransaction(ctx, sessions.Transaction{Kind: kindContinue, Browser: tx.Browser,
		Query: tx.Query, UserID: sess.UserID, ClientInstance: req.clientInstance})
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Save your recovery codes")
	p.Heading = "Save your recovery codes"
	p.Username = user.Username
	p.ActionURL, p.TxID, p.CSRF = h.path+"/login/continue", cont.ID, cont.CSRF
	p.setClient(req.client)
	p.Factor = &factorPage{Step: "done", HasTOTP: true, RecoveryCodes: codes, AccountURL: h.path + "/account"}
	return h.render(c, http.StatusOK, "account.html", p)
}

// enrolPasskey completes an enrolment with a new passkey: the browser's
// answer to the page's registration proves the user holds it, and counts
// as the sign-in's second factor; the sign-in goes on at once (there are
// no recovery codes to show).
func (h *Handler) enrolPasskey(c echo.Context, tx sessions.Transaction, req *authzRequest, user users.User, data enrolData, credential string, factors []sessions.Factor, now int64) error {
	ctx := c.Request().Context()
	refused := func(why string) error {
		secret, err := h.cfg.Factors.PendingTOTP(ctx, user.ID)
		if err != nil {
			return h.errorPage(c, http.StatusBadRequest, "The passkey was not added", why+" Start again to continue.", tx.Query)
		}
		return h.renderEnrol(c, tx, user, secret, "The passkey was not added. "+why, http.StatusBadRequest)
	}
	var cm ceremony
	if h.passkeys == nil || len(data.Ceremony) == 0 || json.Unmarshal(data.Ceremony, &cm) != nil {
		return refused("This page offered no passkey.")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(credential))
	if err != nil {
		return refused("Your browser's answer could not be read.")
	}
	w, _, err := h.waUser(ctx, user)
	if err != nil {
		return h.serverError(c, err)
	}
	cred, err := h.passkeys.CreateCredential(w, cm.Session, parsed)
	if err != nil {
		return refused("Your browser's answer did not match this page (another site, another account, or an old page).")
	}
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This page was already used. Start again to continue.", tx.Query)
	}
	name := strings.TrimSpace(c.Request().PostFormValue("name"))
	if name == "" {
		name = "Passkey"
	}
	if utf8.RuneCountInString(name) > 64 {
		name = string([]rune(name)[:64])
	}
	if err := h.cfg.Factors.AddPasskey(ctx, user.ID, name, *cred); err != nil {
		return h.serverError(c, err)
	}
	sess, err := h.startSession(c, user.ID, append(factors, sessions.Factor{Method: sessions.MethodPasskey, At: now})...)
	if err != nil {
		return h.serverError(c, err)
	}
	return h.continueSession(c, req, sess)
}

// submitContinue is POST /login/continue: the sign-in goes on for the
// browser's live session, which must still be the user's the page was
// shown to; every check of a session applies again.
func (h *Handler) submitContinue(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Start again from the application.", "")
	}
	tx, ok, err := h.checkTransaction(c, kindContinue)
	if !ok {
		return err
	}
	req, sess, ok, err := h.signedInForm(c, tx, "This sign-in was already completed.")
	if !ok {
		return err
	}
	return h.continueSession(c, req, sess)
}

// accountRequirement puts what the requirement asks of user on the
// account page.
func (h *Handler) accountRequirement(c echo.Context, user users.User, p *page) error {
	d, err := h.demand(c.Request().Context(), user)
	if err != nil {
		return h.serverError(c, err)
	}
	p.Factor.Required = d.Required
	if d.Required && !d.Enrolled(h.passkeys != nil) {
		p.Factor.Due = formatDue(d.Due)
	}
	return nil
}

// accountTOTPForms adds the forms that remove the app and replace the
// recovery codes to the account page.
func (h *Handler) accountTOTPForms(c echo.Context, user users.User, browser string, p *page) error {
	ctx := c.Request().Context()
	for _, f := range []struct {
		kind, action string
		dst          *accountForm
	}{{kindTOTPDel, "/account/totp/remove", &p.Factor.TOTPRemove}, {kindRecovery, "/account/recovery", &p.Factor.RecoveryRenew}} {
		tx, err := h.sess.NewTransaction(ctx, sessions.Transaction{Kind: f.kind, Browser: sessions.Hash(browser), UserID: user.ID})
		if err != nil {
			return err
		}
		*f.dst = accountForm{Action: h.path + f.action, TxID: tx.ID, CSRF: tx.CSRF}
	}
	return nil
}

// recentCheck reports whether the browser's session proved a second
// factor within recentFactor. When it did not, it shows the code page,
// which brings the user back to the account page, and ok is false.
func (h *Handler) recentCheck(c echo.Context, user users.User) (bool, error) {
	sess, _, live, err := h.currentSession(c.Request().Context(), c)
	if err != nil {
		return false, h.serverError(c, err)
	}
	since := h.cfg.Now().Add(-recentFactor).Unix()
	if live && sess.UserID == user.ID && slices.ContainsFunc(sess.FactorList(), func(f sessions.Factor) bool {
		return f.Method != sessions.MethodPassword && f.At >= since
	}) {
		return true, nil
	}
	return false, h.showOTP(c, kindAcctUp, user, "", "", "Confirm it is you: enter a code (or use a passkey) to change your second factors.", http.StatusOK)
}

// keep is what removing one of user's factors must leave.
func (h *Handler) keep(ctx context.Context, user users.User) (mfa.Keep, error) {
	d, err := h.demand(ctx, user)
	return mfa.Keep{One: d.Required, Passkeys: h.passkeys != nil}, err
}

// lastFactor refuses to remove the last factor of a user who must have one.
func (h *Handler) lastFactor(c echo.Context) error {
	return h.errorPage(c, http.StatusConflict, "This is your last second factor",
		"Your account must have a second factor, so its last one cannot be removed. Add another one first (an authenticator app or a passkey), then remove this one.", "")
}

// removeTOTP is POST /account/totp/remove: the app and its recovery
// codes go, after a recent second factor.
func (h *Handler) removeTOTP(c echo.Context) error {
	tx, user, ok, err := h.accountUser(c, kindTOTPDel)
	if !ok {
		return err
	}
	if ok, err := h.recentCheck(c, user); !ok {
		return err
	}
	ctx := c.Request().Context()
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This page was already used. Open your account page again.", "")
	}
	k, err := h.keep(ctx, user)
	if err != nil {
		return h.serverError(c, err)
	}
	if _, err := h.cfg.Factors.RemoveTOTP(ctx, user.ID, k); errors.Is(err, mfa.ErrLastFactor) {
		return h.lastFactor(c)
	} else if err != nil {
		return h.serverError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, h.path+"/account")
}

// renewRecovery is POST /account/recovery: ten new recovery codes, shown
// once, replace those left, after a recent second factor.
func (h *Handler) renewRecovery(c echo.Context) error {
	tx, user, ok, err := h.accountUser(c, kindRecovery)
	if !ok {
		return err
	}
	if ok, err := h.recentCheck(c, user); !ok {
		return err
	}
	ctx := c.Request().Context()
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This page was already used. Open your account page again.", "")
	}
	codes, err := h.cfg.Factors.NewRecoveryCodes(ctx, user.ID)
	if errors.Is(err, mfa.ErrNoEnrolment) {
		return c.Redirect(http.StatusSeeOther, h.path+"/account")
	}
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Save your recovery codes")
	p.Heading = "Save your recovery codes"
	p.Username = user.Username
	p.Factor = &factorPage{Step: "done", HasTOTP: true, RecoveryCodes: codes, AccountURL: h.path + "/account"}
	return h.render(c, http.StatusOK, "account.html", p)
}
