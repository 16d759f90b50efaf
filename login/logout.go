package login

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/sessions"
)

// logoutRequest is a validated RP-initiated logout request (OIDC
// RP-Initiated Logout 1.0 §2).
type logoutRequest struct {
	hint     *authority.IDTokenHint
	clientID string // the client of redirect
	redirect string // "" unless registered for the client exactly
	state    string
	query    string
}

// parseLogout validates the request. Any doubt about the redirect URI or
// the hint is a page, never a redirect.
func (h *Handler) parseLogout(c echo.Context, q url.Values) (*logoutRequest, *pageError) {
	for k, v := range q {
		if len(v) > 1 {
			return nil, &pageError{"Sign-out request is not valid", "The request repeats the parameter " + printable(k) + "."}
		}
	}
	lr := &logoutRequest{state: q.Get("state"), query: q.Encode()}
	clientID := q.Get("client_id")
	if v := q.Get("id_token_hint"); v != "" {
		hint, err := h.auth.VerifyIDTokenHint(c.Request().Context(), v)
		if err != nil {
			return nil, &pageError{"Sign-out request is not valid", "The request carries an ID token that this server did not issue, so you were not sent anywhere."}
		}
		if clientID != "" && !slices.Contains(hint.Audience, clientID) {
			return nil, &pageError{"Sign-out request is not valid", "The request names an application that the ID token was not issued to."}
		}
		if clientID == "" && len(hint.Audience) > 0 {
			clientID = hint.Audience[0]
		}
		lr.hint = &hint
	}
	if v := q.Get("post_logout_redirect_uri"); v != "" {
		if clientID == "" {
			return nil, &pageError{"Sign-out request is not valid", "The request asks to return to an address but does not say which application it belongs to."}
		}
		cl, err := h.auth.LoginClient(c.Request().Context(), clientID)
		if err != nil || cl.Disabled || !cl.PostLogoutRedirectAllowed(v) {
			return nil, &pageError{"Sign-out request is not valid", "The address to return to after signing out is not registered for the application, so you were not sent there."}
		}
		lr.redirect, lr.clientID = v, clientID
	}
	return lr, nil
}

// endSession is GET and POST /oauth2/logout (end_session_endpoint).
func (h *Handler) endSession(c echo.Context) error {
	q, err := requestParams(c)
	if err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-out request is not valid", "The request could not be read.", "")
	}
	lr, perr := h.parseLogout(c, q)
	if perr != nil {
		return h.errorPage(c, http.StatusBadRequest, perr.heading, perr.message, "")
	}
	ctx := c.Request().Context()
	sess, cookie, ok, err := h.currentSession(ctx, c)
	if err != nil {
		return h.serverError(c, err)
	}
	// A valid hint for the session's own user is the RP speaking for the
	// user: no question. Otherwise the user confirms (a cross-site link
	// must not log anyone out).
	if lr.hint != nil && ok && sess.UserID == lr.hint.Sub {
		return h.finishLogout(c, lr, cookie)
	}
	if lr.hint != nil && !ok {
		return h.logoutWithoutBrowser(c, lr)
	}
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(ctx, sessions.Transaction{Kind: "logout", Browser: sessions.Hash(browser), Query: lr.query})
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Sign out")
	p.Heading = "Sign out of " + h.cfg.ProductName + "?"
	p.ActionURL, p.TxID, p.CSRF = h.path+"/oauth2/logout/confirm", tx.ID, tx.CSRF
	return h.render(c, http.StatusOK, "logout.html", p)
}

// confirmLogout is POST /oauth2/logout/confirm.
func (h *Handler) confirmLogout(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-out form is not valid", "The form could not be read.", "")
	}
	tx, ok, err := h.checkTransaction(c, "logout")
	if !ok {
		return err
	}
	q, _ := url.ParseQuery(tx.Query)
	lr, perr := h.parseLogout(c, q)
	if perr != nil {
		return h.errorPage(c, http.StatusBadRequest, perr.heading, perr.message, "")
	}
	if _, err := h.sess.FinishTransaction(c.Request().Context(), tx.ID); err != nil {
		return h.serverError(c, err)
	}
	cookie, _ := h.readCookie(c, SessionCookie)
	if c.Request().PostFormValue("decision") != "logout" {
		p := h.newPage("Still signed in")
		p.Heading, p.Message = "You are still signed in", "Nothing was changed. You can close this page."
		return h.render(c, http.StatusOK, "loggedout.html", p)
	}
	return h.finishLogout(c, lr, cookie)
}

// finishLogout ends the browser's session and goes back to the client,
// or says that the user is signed out. A session begun at an upstream
// provider ends there too when the provider allows it (External.Logout):
// the browser goes through the provider's end-session endpoint first and
// comes back to ContinueLogout.
func (h *Handler) finishLogout(c echo.Context, lr *logoutRequest, cookie string) error {
	ctx := c.Request().Context()
	var ended sessions.Session
	if cookie != "" {
		s, err := h.sess.Lookup(ctx, cookie)
		switch {
		case err == nil:
			ended = s
		case !errors.Is(err, sessions.ErrNotFound):
			return h.serverError(c, err)
		}
		if err := h.sess.End(ctx, cookie); err != nil {
			return h.serverError(c, err)
		}
	}
	c.SetCookie(h.cookie(SessionCookie, "", -1))
	upstreamName := ""
	if ended.Upstream != nil && h.cfg.External != nil {
		then := ""
		if lr.redirect != "" {
			then = url.Values{"client_id": {lr.clientID}, "post_logout_redirect_uri": {lr.redirect}, "state": {lr.state}}.Encode()
		}
		sent, name, err := h.cfg.External.Logout(c, h, ended.UserID, ended.Upstream, then)
		if sent || err != nil {
			return err
		}
		upstreamName = name
	}
	if lr.redirect != "" {
		return h.backToClient(c, lr)
	}
	p := h.newPage("Signed out")
	p.Heading, p.Message = "You are signed out", "You have been signed out of "+h.cfg.ProductName+". You can close this page."
	if upstreamName != "" {
		// Never claim more than was ended: the provider's session is not.
		p.Message = "You have been signed out of " + h.cfg.ProductName + ". You are still signed in at " + upstreamName +
			": sign out there too if others use this browser."
	}
	return h.render(c, http.StatusOK, "loggedout.html", p)
}

// backToClient sends the browser to the client's registered
// post_logout_redirect_uri with its state.
func (h *Handler) backToClient(c echo.Context, lr *logoutRequest) error {
	target := lr.redirect
	if lr.state != "" {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + url.Values{"state": {lr.state}}.Encode()
	}
	return h.navigate(c, target)
}

// logoutWithoutBrowser answers a valid id_token_hint that arrives with no
// browser session: a relying party's server calling the end-session
// endpoint (oauth2-proxy's backend logout), or a browser whose cookie is
// gone. It ends the session the ID token came from (its sid, for its
// user) and says truthfully whether one was ended: "signed out" only when
// a session was. Anyone holding the ID token can do this, which is as much
// as they could do with the browser that holds it; an ID token without sid
// ends nothing.
func (h *Handler) logoutWithoutBrowser(c echo.Context, lr *logoutRequest) error {
	ended, err := h.sess.EndSID(c.Request().Context(), lr.hint.Sub, lr.hint.SID)
	if err != nil {
		return h.serverError(c, err)
	}
	if lr.redirect != "" {
		return h.finishLogout(c, lr, "")
	}
	p := h.newPage("Signed out")
	if ended {
		p.Heading, p.Message = "The session is ended", "The "+h.cfg.ProductName+" session this application's sign-in came from has ended."
	} else {
		p.Heading, p.Message = "No session was ended", "The "+h.cfg.ProductName+" session this application's sign-in came from had already ended, or this request could not name it. No other session was changed."
	}
	return h.render(c, http.StatusOK, "loggedout.html", p)
}
