package login

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/sessions"
)

// External is sign-in through other identity providers (package
// upstream): its buttons on the login page and its routes. The login
// surface knows nothing else of it; it completes a login through
// CompleteExternal exactly as the password form does.
type External interface {
	// Buttons are the "Sign in with …" buttons, in order.
	Buttons() []ExternalButton
	// PasswordLogin says whether the username and password form is shown
	// and accepted.
	PasswordLogin() bool
	// Register mounts the routes on e, with the login pages' headers.
	Register(e *echo.Echo, h *Handler, sec echo.MiddlewareFunc)
	// Logout is called by a browser's sign-out that has just ended a
	// session begun at a provider (up, the session's Upstream, of userID).
	// When the provider's session is to be ended too, it sends the
	// browser to the provider's end-session endpoint, whose answer comes
	// back to a route of its own that calls ContinueLogout with then, and
	// reports sent. Otherwise sent is false and the caller goes on as
	// after any sign-out. name is the provider's name ("" when unknown),
	// for the signed-out page to say what was and was not ended.
	Logout(c echo.Context, h *Handler, userID string, up *sessions.Upstream, then string) (sent bool, name string, err error)
}

// ExternalButton is one button: a form that posts the sign-in page's
// transaction to ActionPath (below the issuer's path). The buttons are on
// an authorization request's sign-in page, the account page's and the
// device page's.
type ExternalButton struct{ Name, ActionPath string }

// externalButton is a button as the template shows it.
type externalButton struct{ Name, ActionURL string }

func (h *Handler) externalButtons() []externalButton {
	if h.cfg.External == nil {
		return nil
	}
	var out []externalButton
	for _, b := range h.cfg.External.Buttons() {
		out = append(out, externalButton{Name: b.Name, ActionURL: h.path + b.ActionPath})
	}
	return out
}

func (h *Handler) passwordLogin() bool {
	return h.cfg.External == nil || h.cfg.External.PasswordLogin()
}

// signInKinds are the sign-in forms an external provider's button may
// post: an authorization request's, the account page's and the device
// page's.
var signInKinds = []string{"login", kindAcctLogin, kindDeviceLogin}

// ExternalTransaction reads a sign-in page's form (tx, csrf) posted to an
// external provider's start route and checks it as the password form's
// is: made for this browser, unexpired, not completed, of a sign-in form
// (and, for the device page's, its code still waiting). When ok is false
// the page saying why is already rendered and err is its result.
func (h *Handler) ExternalTransaction(c echo.Context) (tx sessions.Transaction, ok bool, err error) {
	if err := parseForm(c); err != nil {
		return tx, false, h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Start again where you were signing in.", "")
	}
	if tx, ok, err = h.checkTransaction(c, signInKinds...); !ok || tx.Kind != kindDeviceLogin {
		return tx, ok, err
	}
	// Said now rather than after the provider's sign-in.
	_, _, ok, err = h.txDevice(c, tx)
	return tx, ok, err
}

// externalOrigin is what the Data of an external flow's transaction
// holds: the kind of the sign-in form it was started from.
type externalOrigin struct {
	From string `json:"from"`
}

// ExternalFlow is the transaction (of kind, the provider's) of an
// external provider's flow started from the sign-in form's transaction
// tx (ExternalTransaction): bound to the same browser, carrying its
// request, and remembering which sign-in it continues inside the MAC'd
// transaction, never in a URL the browser could edit; CompleteExternal
// continues there.
func ExternalFlow(tx sessions.Transaction, kind string) sessions.Transaction {
	data, _ := json.Marshal(externalOrigin{From: tx.Kind}) // a struct of a string: cannot fail
	return sessions.Transaction{Kind: kind, Browser: tx.Browser, Query: tx.Query, ClientInstance: tx.ClientInstance, Data: data}
}

// CompleteExternal finishes the external flow's transaction tx (made by
// ExternalFlow; its Kind checked by the caller) for userID, whom the
// external provider up identified: the transaction must be bound to this
// browser's cookie and is completed once; the SSO session starts with
// factors, what the provider said of the sign-in (each marked with the
// provider: Factor.Upstream), never a password; none stands for a sign-in
// at the provider that said nothing. The sign-in then goes on as after a
// password, where it was started: an authorization request resumes (a
// request that needs a second factor the session lacks asks for Signet's
// own, the step-up; then consent, then the code), the account page
// opens, or the device page asks for its confirmation (with the step-up
// the client or the requirement needs). up is kept with the session for
// its logout (External.Logout).
func (h *Handler) CompleteExternal(c echo.Context, tx sessions.Transaction, userID string, up *sessions.Upstream, factors []sessions.Factor) error {
	if up == nil || up.Provider == "" {
		return h.serverError(c, errors.New("external sign-in without its provider"))
	}
	bv, sent := h.readCookie(c, BrowserCookie)
	if !sent || subtle.ConstantTimeCompare([]byte(sessions.Hash(bv)), []byte(tx.Browser)) != 1 {
		return h.errorPage(c, http.StatusForbidden, "Your browser did not confirm this request",
			"This sign-in was not started in this browser (or its cookie is gone), so it was refused to protect your account. Start again.", "")
	}
	var from externalOrigin
	if len(tx.Data) > 0 && json.Unmarshal(tx.Data, &from) != nil {
		return h.serverError(c, errors.New("external sign-in transaction with unreadable data"))
	}
	// next goes on after the sign-in, where it was started.
	var next func(sessions.Session) error
	restart := "" // only an authorization request can be started again
	switch from.From {
	case kindAcctLogin:
		next = func(sessions.Session) error { return c.Redirect(http.StatusSeeOther, h.path+"/account") }
	case kindDeviceLogin:
		d, cl, ok, err := h.txDevice(c, tx)
		if !ok {
			return err
		}
		next = func(s sessions.Session) error { return h.deviceShowConsent(c, cl, d, s) }
	case "login", "": // "": a flow started before the sign-in kinds were kept
		req, ok, err := h.reopen(c, tx)
		if !ok {
			return err
		}
		// A second factor the request or the requirement asks for, as for
		// any session (enrol.go).
		next = func(s sessions.Session) error { return h.continueSession(c, req, s) }
		restart = tx.Query
	default:
		return h.serverError(c, fmt.Errorf("external sign-in started from a %q transaction", from.From))
	}
	ctx := c.Request().Context()
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This sign-in was already completed. Start again to continue.", restart)
	}
	if _, err := h.auth.ActiveUser(ctx, userID); err != nil {
		if isNotFound(err) {
			return h.ExternalError(c, http.StatusForbidden, "Your account is disabled", "The account linked to this sign-in is disabled. Contact the operator of this server.")
		}
		return h.serverError(c, err)
	}
	if len(factors) == 0 {
		factors = []sessions.Factor{{Upstream: up.Provider, At: h.cfg.Now().Unix()}}
	}
	for _, f := range factors {
		if f.Upstream != up.Provider {
			return h.serverError(c, errors.New("external sign-in with a factor not of its provider"))
		}
	}
	sess, err := h.startUpstreamSession(c, userID, up, factors...)
	if err != nil {
		return h.serverError(c, err)
	}
	return next(sess)
}

// ExternalBrowser returns the hash of this browser's binding cookie
// (setting one if it has none), to bind an external flow's transaction
// to it as the login pages bind theirs.
func (h *Handler) ExternalBrowser(c echo.Context) (string, error) {
	b, err := h.browserID(c)
	if err != nil {
		return "", err
	}
	return sessions.Hash(b), nil
}

// ContinueLogout finishes a sign-out that went through a provider's
// end-session endpoint (External.Logout): tx is the transaction the
// provider's answer named (its Kind checked by the caller), which must be
// bound to this browser's cookie and is used once. Its Query is the then
// of External.Logout: the relying party's return address, checked again
// as at the start; without one the signed-out page says that both the
// Signet session and the one at name ended.
func (h *Handler) ContinueLogout(c echo.Context, tx sessions.Transaction, name string) error {
	bv, sent := h.readCookie(c, BrowserCookie)
	if !sent || subtle.ConstantTimeCompare([]byte(sessions.Hash(bv)), []byte(tx.Browser)) != 1 {
		return h.errorPage(c, http.StatusForbidden, "Your browser did not confirm this request",
			"This sign-out was not started in this browser (or its cookie is gone), so it was not continued. Your "+h.cfg.ProductName+" session was already ended when it started.", "")
	}
	if done, err := h.sess.FinishTransaction(c.Request().Context(), tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.ExternalError(c, http.StatusBadRequest, "This sign-out has expired", "This sign-out was already completed. Nothing was changed.")
	}
	q, err := url.ParseQuery(tx.Query)
	if err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-out request is not valid", "The request could not be read.", "")
	}
	lr, perr := h.parseLogout(c, q)
	if perr != nil {
		return h.errorPage(c, http.StatusBadRequest, perr.heading, perr.message, "")
	}
	if lr.redirect != "" {
		return h.backToClient(c, lr)
	}
	p := h.newPage("Signed out")
	p.Heading, p.Message = "You are signed out", "You have been signed out of "+h.cfg.ProductName+" and of "+name+". You can close this page."
	return h.render(c, http.StatusOK, "loggedout.html", p)
}

// ExternalError renders an error page of the login surface.
func (h *Handler) ExternalError(c echo.Context, status int, heading, message string) error {
	return h.errorPage(c, status, heading, message, "")
}

// ExternalServerError answers a store or provider failure as the login
// pages do.
func (h *Handler) ExternalServerError(c echo.Context, err error) error {
	if err == nil {
		err = errors.New("external sign-in failed")
	}
	return h.serverError(c, err)
}

// Navigate sends the browser to target (a 302 for a GET, a page that
// continues by itself after a form POST: the CSP's form-action also
// applies to the redirect that follows a form).
func (h *Handler) Navigate(c echo.Context, target string) error { return h.navigate(c, target) }
