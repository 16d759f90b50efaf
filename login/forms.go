package login

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/users"
)

// parseForm reads a bounded form body.
func parseForm(c echo.Context) error {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBody)
	return r.ParseForm()
}

// reopen validates the request a transaction was started for again: the
// client may have changed since the page was shown.
func (h *Handler) reopen(c echo.Context, tx sessions.Transaction) (*authzRequest, bool, error) {
	q, err := url.ParseQuery(tx.Query)
	if err != nil {
		return nil, false, h.errorPage(c, http.StatusBadRequest, "Sign-in request is not valid", "The request could not be read.", "")
	}
	req, perr, oerr := h.parseRequest(c, q)
	if perr != nil {
		return nil, false, h.errorPage(c, http.StatusBadRequest, perr.heading, perr.message, "")
	}
	// Before anything is sent to the client: a client registered again
	// under this id is not the one the page was shown for.
	if tx.ClientInstance != req.clientInstance {
		return nil, false, h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"The application was registered again since this page was shown. Nothing was changed. Start again from the application.", "")
	}
	if oerr != nil {
		return nil, false, h.redirectError(c, req, oerr)
	}
	return req, true, nil
}

// submitLogin is POST /login/password.
func (h *Handler) submitLogin(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Start again from the application.", "")
	}
	tx, ok, err := h.checkTransaction(c, "login")
	if !ok {
		return err
	}
	req, ok, err := h.reopen(c, tx)
	if !ok {
		return err
	}
	if !h.passwordLogin() {
		return h.errorPage(c, http.StatusForbidden, "Password sign-in is off", "This server does not accept passwords: use one of the sign-in buttons.", tx.Query)
	}
	ctx := c.Request().Context()
	user, ok, err := h.checkPassword(c, func(username, msg, field string, status int) error {
		return h.renderLogin(c, req, tx, username, msg, field, status)
	})
	if !ok {
		return err
	}
	// One completion per transaction: a resubmitted form finds it gone.
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"This sign-in was already completed. Start again to continue.", tx.Query)
	}
	return h.passwordDone(c, req, user)
}

// checkPassword checks the sign-in form's username and password (the
// failed-login limits included). A refusal is answered through again, the
// form shown once more with a message on a field, and ok is false.
func (h *Handler) checkPassword(c echo.Context, again func(username, msg, field string, status int) error) (user users.User, ok bool, err error) {
	r := c.Request()
	username, password := r.PostFormValue("username"), r.PostFormValue("password")
	switch {
	case username == "":
		return user, false, again(username, "Enter your username.", "username", http.StatusBadRequest)
	case password == "":
		return user, false, again(username, "Enter your password.", "password", http.StatusBadRequest)
	}
	user, err = h.auth.AuthenticateUser(r.Context(), username, password, c.RealIP())
	if msg, locked := h.lockedOut(c, err); locked {
		return user, false, again(username, msg, "", http.StatusTooManyRequests)
	}
	switch {
	case errors.Is(err, authority.ErrBadLogin):
		return user, false, again(username, "The username or password is incorrect.", "password", http.StatusUnauthorized)
	case err != nil:
		return user, false, h.serverError(c, err)
	}
	return user, true, nil
}

// lockedOut reads a sign-in refused by the login rate limits (the
// password's, shared by codes and passkeys): it sets Retry-After and
// returns the message saying until when. locked is false for any other
// error.
func (h *Handler) lockedOut(c echo.Context, err error) (msg string, locked bool) {
	var lo *authority.LockedOutError
	if !errors.As(err, &lo) {
		return "", false
	}
	secs := int(math.Ceil(lo.Until.Sub(h.cfg.Now()).Seconds()))
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return fmt.Sprintf("Too many failed sign-in attempts. Try again in %d seconds (after %s UTC).", secs, lo.Until.UTC().Format("15:04:05")), true
}

// startSession starts a new SSO session for userID (a new id on every
// login, no fixation: the browser's old session ends) and sets its cookie.
// Without factors the login is the password, now.
func (h *Handler) startSession(c echo.Context, userID string, factors ...sessions.Factor) (sessions.Session, error) {
	return h.startUpstreamSession(c, userID, nil, factors...)
}

// startUpstreamSession is startSession for a sign-in through an upstream
// provider (nil: none), which the session keeps for its logout. A
// session that continues this browser's session of the same user begun
// at that provider (a step-up keeps the provider's factors) keeps its
// provider too, so its logout still goes through the provider.
func (h *Handler) startUpstreamSession(c echo.Context, userID string, up *sessions.Upstream, factors ...sessions.Factor) (sessions.Session, error) {
	ctx := c.Request().Context()
	if old, ok := h.readCookie(c, SessionCookie); ok {
		if i := slices.IndexFunc(factors, func(f sessions.Factor) bool { return f.Upstream != "" }); up == nil && i >= 0 {
			prev, err := h.sess.Lookup(ctx, old)
			if err != nil && !errors.Is(err, sessions.ErrNotFound) {
				return sessions.Session{}, err
			}
			if err == nil && prev.UserID == userID && prev.Upstream != nil && prev.Upstream.Provider == factors[i].Upstream {
				up = prev.Upstream
			}
		}
		if err := h.sess.End(ctx, old); err != nil {
			return sessions.Session{}, err
		}
	}
	if len(factors) == 0 {
		factors = []sessions.Factor{{Method: sessions.MethodPassword, At: h.cfg.Now().Unix()}}
	}
	cookie, sess, err := h.sess.StartUpstream(ctx, userID, factors, up)
	if err != nil {
		return sessions.Session{}, err
	}
	c.SetCookie(h.cookie(SessionCookie, cookie, 0))
	return sess, nil
}

// submitConsent is POST /login/consent.
func (h *Handler) submitConsent(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Consent form is not valid", "The form could not be read. Start again from the application.", "")
	}
	tx, ok, err := h.checkTransaction(c, "consent")
	if !ok {
		return err
	}
	req, sess, ok, err := h.signedInForm(c, tx, "This request was already answered.")
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	if c.Request().PostFormValue("decision") != "allow" {
		return h.redirectError(c, req, &oauthError{"access_denied", "the user did not allow access"})
	}
	// The user allows what the page showed, nothing more: the client may
	// have changed its default scopes or gained the refresh grant since.
	want := req.consent(sess.UserID)
	if !slices.Equal(tx.Scopes, want.Scopes) || tx.Offline != want.Offline {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"The application changed what it asks for since this page was shown. Nothing was allowed. Start again to see what it asks now.", tx.Query)
	}
	if err := h.sess.GrantConsent(ctx, want); err != nil {
		return h.serverError(c, err)
	}
	return h.issueCode(c, req, sess)
}

// signedInForm checks a form the signed-in user answers for an
// authorization request (consent, the grace-period reminder): the request
// reopened from tx, the browser's live session still the user's the page
// was shown to, and tx completed once (used says so otherwise). When ok is
// false the page saying why is rendered and err is its result.
func (h *Handler) signedInForm(c echo.Context, tx sessions.Transaction, used string) (req *authzRequest, sess sessions.Session, ok bool, err error) {
	if req, ok, err = h.reopen(c, tx); !ok {
		return nil, sess, false, err
	}
	ctx := c.Request().Context()
	sess, _, live, err := h.currentSession(ctx, c)
	if err != nil {
		return nil, sess, false, h.serverError(c, err)
	}
	if !live || sess.UserID != tx.UserID {
		return nil, sess, false, h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"You were signed out, or signed in as someone else, since this page was shown. Start again to continue.", tx.Query)
	}
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return nil, sess, false, h.serverError(c, err)
	} else if !done {
		return nil, sess, false, h.errorPage(c, http.StatusBadRequest, "This page has expired", used+" Start again to continue.", tx.Query)
	}
	return req, sess, true, nil
}
