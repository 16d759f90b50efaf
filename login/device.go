package login

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/sessions"
)

// The hosted page of the RFC 8628 device flow (authority.DevicePath): the
// user types the code the device shows, signs in (or uses the SSO
// session), and allows or denies the device. The confirmation is always
// shown, even for a first-party client or a remembered consent: the code
// may have been sent by someone else (RFC 8628 §5.4, remote phishing), and
// the page names the application and the code so the user can tell.
//
// Forms are login transactions like the others (CSRF token, browser
// binding, single completion); their Query carries the user code.

// kindDeviceLogin is the device page's sign-in: its password form, its
// passkey button and its external providers' buttons (external.go).
const kindDeviceLogin = "device_login"

// devicePage is the data of device.html.
type devicePage struct {
	page
	// Step is "enter" (type the code), "confirm" (allow or deny) or
	// "done" (go back to the device).
	Step     string
	UserCode string // XXXX-XXXX
}

func (h *Handler) registerDevice(e *echo.Echo, sec echo.MiddlewareFunc) {
	e.GET(authority.DevicePath, h.deviceEnter, sec)
	e.POST(authority.DevicePath, h.deviceSubmitCode, sec)
	e.POST(authority.DevicePath+"/login", h.deviceLogin, sec)
	e.POST(authority.DevicePath+"/consent", h.deviceConsent, sec)
}

// addDeviceTemplate keeps an operator's templates directory from an older
// release working: without its own device.html, the embedded one is used
// (with the operator's head and foot).
func (h *Handler) addDeviceTemplate() error {
	if h.tmpl.Lookup("device.html") != nil {
		return nil
	}
	b, err := embedded.ReadFile("templates/device.html")
	if err != nil {
		return err
	}
	_, err = h.tmpl.New("device.html").Parse(string(b))
	return err
}

// deviceEnter is GET /device: the code form, filled in from
// verification_uri_complete's user_code.
func (h *Handler) deviceEnter(c echo.Context) error {
	code := c.QueryParam("user_code")
	if n, ok := sessions.NormalizeUserCode(code); ok {
		code = sessions.FormatUserCode(n)
	} else {
		code = ""
	}
	return h.renderEnter(c, code, "", http.StatusOK)
}

func (h *Handler) renderEnter(c echo.Context, code, msg string, status int) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: "device", Browser: sessions.Hash(browser)})
	if err != nil {
		return h.serverError(c, err)
	}
	p := devicePage{page: h.newPage("Connect a device"), Step: "enter", UserCode: code}
	p.Heading = "Connect a device"
	p.ActionURL, p.TxID, p.CSRF = h.path+authority.DevicePath, tx.ID, tx.CSRF
	p.Error = msg
	return h.renderDevice(c, status, p)
}

func (h *Handler) renderDevice(c echo.Context, status int, p devicePage) error {
	var b strings.Builder
	if err := h.tmpl.ExecuteTemplate(&b, "device.html", p); err != nil {
		return h.serverError(c, fmt.Errorf("render device page: %w", err))
	}
	return c.HTML(status, b.String())
}

// deviceSubmitCode is POST /device: look the code up, within the limit
// of wrong codes per address.
func (h *Handler) deviceSubmitCode(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Form is not valid", "The form could not be read. Start again.", "")
	}
	if _, ok, err := h.checkTransaction(c, "device"); !ok {
		return err
	}
	typed := c.Request().PostFormValue("user_code")
	ip := c.RealIP()
	if wait := h.auth.UserCodeRetryAfter(ip); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return h.renderEnter(c, "", fmt.Sprintf("Too many wrong codes were entered from your network. Try again in %d seconds.", secs), http.StatusTooManyRequests)
	}
	d, ok, err := h.pendingDevice(c, typed)
	if err != nil {
		return h.serverError(c, err)
	}
	if !ok {
		h.auth.UserCodeFailed(ip)
		return h.renderEnter(c, "", "That code is not valid, has expired or was already used. Check the code your device shows and try again.", http.StatusBadRequest)
	}
	cl, ok, err := h.deviceClient(c, d)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	sess, _, live, err := h.currentSession(ctx, c)
	if err != nil {
		return h.serverError(c, err)
	}
	if !live {
		return h.deviceShowLogin(c, cl, d.code, "", "", "", http.StatusOK)
	}
	return h.deviceShowConsent(c, cl, d, sess)
}

// pendingDevice finds the pending authorization of a typed user code; ok
// is false when there is none. code is the normalized user code.
func (h *Handler) pendingDevice(c echo.Context, typed string) (device, bool, error) {
	code, ok := sessions.NormalizeUserCode(typed)
	if !ok {
		return device{}, false, nil
	}
	d, key, err := h.sess.PendingDevice(c.Request().Context(), code)
	if errors.Is(err, sessions.ErrNotFound) {
		return device{}, false, nil
	}
	return device{DeviceCode: d, key: key, code: code}, err == nil, err
}

// device is a pending authorization with its storage key and its
// normalized user code.
type device struct {
	sessions.DeviceCode
	key, code string
}

// deviceClient is the client of d as it is now; the page is an error when
// it is gone, disabled or another instance than the one that asked.
func (h *Handler) deviceClient(c echo.Context, d device) (clients.Client, bool, error) {
	cl, instance, err := h.auth.LoginClientInstance(c.Request().Context(), d.ClientID)
	if err != nil && !isNotFound(err) {
		return cl, false, h.serverError(c, err)
	}
	if err != nil || cl.Disabled || instance != d.ClientInstance || !slices.Contains(cl.GrantTypes, clients.GrantDeviceCode) {
		return cl, false, h.errorPage(c, http.StatusBadRequest, "Unknown application",
			"The application that asked for this code is no longer registered with this server, or is disabled. Nothing was allowed.", "")
	}
	return cl, true, nil
}

// deviceTx reloads the pending authorization a form was shown for.
func (h *Handler) deviceTx(c echo.Context, kind string) (sessions.Transaction, device, clients.Client, bool, error) {
	tx, ok, err := h.checkTransaction(c, kind)
	if !ok {
		return tx, device{}, clients.Client{}, false, err
	}
	d, cl, ok, err := h.txDevice(c, tx)
	return tx, d, cl, ok, err
}

// txDevice is the pending authorization (and its client) whose user code
// the checked transaction tx carries; the page is an error when it has
// expired, was answered, or its client changed.
func (h *Handler) txDevice(c echo.Context, tx sessions.Transaction) (device, clients.Client, bool, error) {
	q, _ := url.ParseQuery(tx.Query)
	d, ok, err := h.pendingDevice(c, q.Get("user_code"))
	if err != nil {
		return d, clients.Client{}, false, h.serverError(c, err)
	}
	if !ok {
		return d, clients.Client{}, false, h.errorPage(c, http.StatusBadRequest, "This code has expired",
			"The code has expired or was already used. Start again on your device to get a new code.", "")
	}
	cl, ok, err := h.deviceClient(c, d)
	return d, cl, ok, err
}

func (h *Handler) deviceShowLogin(c echo.Context, cl clients.Client, code, username, msg, field string, status int) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	data, err := h.beginDiscoverable() // the passkey button (passkeylogin.go)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: kindDeviceLogin, Browser: sessions.Hash(browser),
		Query: url.Values{"user_code": {code}}.Encode(), Data: data})
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Sign in")
	p.Heading = "Sign in"
	p.setClient(cl)
	p.ActionURL, p.TxID, p.CSRF = h.path+authority.DevicePath+"/login", tx.ID, tx.CSRF
	p.Username, p.Error, p.ErrorField = username, msg, field
	// Every way the deployment signs in, as on an application's sign-in
	// page: the password only when it is on, the providers' buttons
	// (external.go), the passkey.
	p.External, p.NoPassword = h.externalButtons(), !h.passwordLogin()
	h.setPasskeyButton(c, &p, tx)
	return h.render(c, status, "login.html", p)
}

// deviceLogin is POST /device/login.
func (h *Handler) deviceLogin(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in form is not valid", "The form could not be read. Start again.", "")
	}
	tx, d, cl, ok, err := h.deviceTx(c, kindDeviceLogin)
	code := d.code
	if !ok {
		return err
	}
	if !h.passwordLogin() { // as at the sign-in page (forms.go): the form is not shown, and its POST is refused
		return h.errorPage(c, http.StatusForbidden, "Password sign-in is off", "This server does not accept passwords: use one of the sign-in buttons.", "")
	}
	ctx := c.Request().Context()
	user, ok, err := h.checkPassword(c, func(username, msg, field string, status int) error {
		return h.deviceShowLogin(c, cl, code, username, msg, field, status)
	})
	if !ok {
		return err
	}
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This sign-in was already completed. Start again.", "")
	}
	if has, err := h.hasSecondFactor(ctx, user.ID); err != nil {
		return h.serverError(c, err)
	} else if has { // the one-time code before the confirmation (factors.go)
		return h.showOTP(c, kindDeviceOTP, user, tx.Query, d.ClientInstance, "", http.StatusOK)
	}
	sess, err := h.startSession(c, user.ID)
	if err != nil {
		return h.serverError(c, err)
	}
	return h.deviceShowConsent(c, cl, d, sess)
}

// deviceShowConsent renders the confirmation: the application, the code,
// what it may do, and whether it keeps access (the consent page's rules).
func (h *Handler) deviceShowConsent(c echo.Context, cl clients.Client, d device, sess sessions.Session) error {
	need := cl.RequireSecondFactor && !sess.HasSecondFactor()
	if !need { // the requirement's second factor (enrol.go)
		var err error
		if need, err = h.policyNeeds(c.Request().Context(), &sess); err != nil {
			return h.serverError(c, err)
		}
	}
	if need {
		return h.deviceStepUp(c, cl, d, sess)
	}
	scopes := strings.Fields(d.Scope)
	offline := keepsAccess(cl)
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: "device_consent", Browser: sessions.Hash(browser),
		Query: url.Values{"user_code": {d.code}}.Encode(), UserID: sess.UserID, ClientInstance: d.ClientInstance, Scopes: scopes, Offline: offline})
	if err != nil {
		return h.serverError(c, err)
	}
	p := devicePage{page: h.newPage("Allow a device"), Step: "confirm", UserCode: sessions.FormatUserCode(d.code)}
	p.setClient(cl)
	p.Heading = p.markedName() + " on a device wants to access your account"
	p.ActionURL, p.TxID, p.CSRF = h.path+authority.DevicePath+"/consent", tx.ID, tx.CSRF
	for _, s := range scopes {
		if s != "offline_access" {
			p.Scopes = append(p.Scopes, scopeText{Name: s, Text: describeScope(s, p.ClientName)})
		}
	}
	if p.Offline = offline; offline {
		p.Scopes = append(p.Scopes, scopeText{Name: "offline_access", Text: describeScope("offline_access", p.ClientName)})
	}
	return h.renderDevice(c, http.StatusOK, p)
}

// deviceConsent is POST /device/consent: the user's decision, recorded
// once, for exactly what the page showed.
func (h *Handler) deviceConsent(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Consent form is not valid", "The form could not be read. Start again.", "")
	}
	tx, d, cl, ok, err := h.deviceTx(c, "device_consent")
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	sess, _, live, err := h.currentSession(ctx, c)
	if err != nil {
		return h.serverError(c, err)
	}
	if !live || sess.UserID != tx.UserID {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"You were signed out, or signed in as someone else, since this page was shown. Enter the code again to continue.", "")
	}
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This request was already answered.", "")
	}
	need := cl.RequireSecondFactor && !sess.HasSecondFactor()
	if !need {
		if need, err = h.policyNeeds(ctx, &sess); err != nil {
			return h.serverError(c, err)
		}
	}
	if need { // factors.go: deviceStepUp
		return h.errorPage(c, http.StatusBadRequest, "A second factor is needed", "This application needs a second factor. Enter the code from your device again to continue.", "")
	}
	if tx.ClientInstance != d.ClientInstance || !slices.Equal(tx.Scopes, strings.Fields(d.Scope)) || tx.Offline != keepsAccess(cl) {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"The application changed what it asks for since this page was shown. Nothing was allowed. Start again on your device.", "")
	}
	allow := c.Request().PostFormValue("decision") == "allow"
	dd := sessions.DeviceDecision{Approve: allow, ClientInstance: d.ClientInstance, Scope: d.Scope,
		UserID: sess.UserID, SID: sess.SID, Session: sess.Key, AuthTime: sess.AuthTime, Offline: tx.Offline, AMR: sess.AMR(), ACR: sess.ACR()}
	if !cl.FirstParty {
		// Remembered as a browser login's consent is: refreshes of a
		// third-party client need it, and withdrawing it ends them.
		dd.Consent = &sessions.Consent{UserID: sess.UserID, ClientID: cl.ID, ClientInstance: d.ClientInstance, Scopes: tx.Scopes, Offline: tx.Offline}
	}
	err = h.sess.DecideDevice(ctx, d.key, dd)
	if errors.Is(err, sessions.ErrNotFound) {
		return h.errorPage(c, http.StatusBadRequest, "This code has expired",
			"The code has expired or was already used. Start again on your device to get a new code.", "")
	}
	if err != nil {
		return h.serverError(c, err)
	}
	p := devicePage{page: h.newPage("Device connected"), Step: "done"}
	p.Heading, p.Message = "Device connected", "You can close this page and return to your device."
	if !allow {
		p.Title, p.Heading, p.Message = "Device denied", "Device denied", "The device was not given access. You can close this page."
	}
	return h.renderDevice(c, http.StatusOK, p)
}
