// Package login is Signet's browser-facing OpenID Connect surface: the
// authorization endpoint (/oauth2/authorize), the hosted login, consent,
// error and logout pages, and RP-initiated logout (/oauth2/logout). Pages
// are server-rendered from html/template files embedded in the binary
// (replaceable with ui.templates_dir), work without JavaScript, and carry a
// strict Content-Security-Policy. Sessions, login transactions, consents
// and codes live in storage through package sessions; users, clients and
// ID token hints come from the authority.
package login

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/refusal"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/sessions"
)

//go:embed templates/*.html static/*
var embedded embed.FS

// Cookie names. The session cookie references the SSO session; the browser
// cookie binds login transactions (CSRF) to this browser. On an https
// issuer both carry the __Host- prefix (cookieName).
const (
	SessionCookie = "signet_session"
	BrowserCookie = "signet_browser"
)

// maxFormBody bounds login, consent and authorize form bodies.
const maxFormBody = 64 << 10

// csp is the policy of every page: no script at all, styles and images
// from this server only, forms post here only, never framed.
const csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config is what the login surface needs.
type Config struct {
	Authority *authority.Server
	Sessions  *sessions.Manager
	// ProductName is shown in titles and headings (default "Signet").
	ProductName string
	// LogoURL is an image shown above the forms: a path on this server or
	// a data: URI (the CSP allows no other origin).
	LogoURL string
	// CSSFile is an operator stylesheet served after the built-in one.
	CSSFile string
	// TemplatesDir replaces the embedded templates (same file names).
	TemplatesDir string
	// Factors are the users' second factors (package mfa); nil: none are
	// asked and the account page is not served.
	Factors *mfa.Factors
	// External adds sign-in through other identity providers (nil: none).
	External External
	// PasskeysSecondFactorOnly keeps passkeys to the second factor: the
	// sign-in page offers no passkey sign-in without a password
	// (passkeylogin.go; login.passkeys.passwordless: false).
	PasskeysSecondFactorOnly bool
	Logger                   *slog.Logger
	Now                      func() time.Time
}

// Handler serves the login surface.
type Handler struct {
	cfg       Config
	auth      *authority.Server
	sess      *sessions.Manager
	tmpl      *template.Template
	css       []byte
	customCSS []byte
	log       *slog.Logger
	issuer    string
	base      string             // issuer without trailing slash
	path      string             // issuer path: cookie Path and the prefix of form actions
	secure    bool               // issuer is https: cookies are Secure
	passkeys  *webauthn.WebAuthn // nil: passkeys are off (passkey.go)

	// refusals logs store outages once per episode (unavailable.go).
	refusals refusal.Log
}

// New loads the templates and stylesheets.
func New(cfg Config) (*Handler, error) {
	if cfg.Authority == nil || cfg.Sessions == nil {
		return nil, errors.New("login: authority and sessions are required")
	}
	if cfg.ProductName == "" {
		cfg.ProductName = "Signet"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LogoURL != "" && !strings.HasPrefix(cfg.LogoURL, "/") && !strings.HasPrefix(cfg.LogoURL, "data:image/") {
		return nil, fmt.Errorf("login: logo URL %q must be a path on this server or a data:image URI (the pages' CSP allows no other origin)", cfg.LogoURL)
	}
	h := &Handler{cfg: cfg, auth: cfg.Authority, sess: cfg.Sessions, log: cfg.Logger, issuer: cfg.Authority.Issuer()}
	h.base = strings.TrimSuffix(h.issuer, "/")
	u, err := url.Parse(h.issuer)
	if err != nil {
		return nil, fmt.Errorf("login: issuer: %w", err)
	}
	h.secure = u.Scheme == "https"
	if err := h.setupPasskeys(u); err != nil {
		return nil, err
	}
	h.path = strings.TrimSuffix(u.Path, "/")
	var tfs fs.FS = embedded
	pattern := "templates/*.html"
	if cfg.TemplatesDir != "" {
		tfs, pattern = os.DirFS(cfg.TemplatesDir), "*.html"
	}
	h.tmpl, err = template.New("").Funcs(template.FuncMap{"join": strings.Join}).ParseFS(tfs, pattern)
	if err != nil {
		return nil, fmt.Errorf("login: templates: %w", err)
	}
	for _, name := range []string{"login.html", "consent.html", "error.html", "logout.html", "loggedout.html", "continue.html"} {
		if h.tmpl.Lookup(name) == nil {
			return nil, fmt.Errorf("login: templates: %s is missing", name)
		}
	}
	if err := h.addFactorTemplates(); err != nil {
		return nil, fmt.Errorf("login: templates: %w", err)
	}
	if err := h.addDeviceTemplate(); err != nil {
		return nil, fmt.Errorf("login: templates: device.html: %w", err)
	}
	if h.css, err = embedded.ReadFile("static/signet.css"); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if cfg.CSSFile != "" {
		if h.customCSS, err = os.ReadFile(cfg.CSSFile); err != nil {
			return nil, fmt.Errorf("login: css file: %w", err)
		}
	}
	return h, nil
}

// Register adds the routes to e (the authority's public server).
func (h *Handler) Register(e *echo.Echo) {
	sec := h.securityHeaders
	e.GET("/oauth2/authorize", h.authorize, sec)
	e.POST("/oauth2/authorize", h.authorize, sec)
	e.POST("/login/password", h.submitLogin, sec)
	e.POST("/login/consent", h.submitConsent, sec)
	e.GET("/oauth2/logout", h.endSession, sec)
	e.POST("/oauth2/logout", h.endSession, sec)
	e.POST("/oauth2/logout/confirm", h.confirmLogout, sec)
	h.registerDevice(e, sec)
	h.registerFactors(e, sec)
	if h.passwordless() {
		e.POST("/login/passkey", h.submitPasskeyLogin, sec)
	}
	if h.cfg.External != nil {
		h.cfg.External.Register(e, h, sec)
	}
	e.GET("/login/static/signet.css", h.stylesheet(h.css), sec)
	if h.customCSS != nil {
		e.GET("/login/static/custom.css", h.stylesheet(h.customCSS), sec)
	}
}

// securityHeaders go on every response of the login surface.
func (h *Handler) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hd := c.Response().Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Pragma", "no-cache")
		return next(c)
	}
}

func (h *Handler) stylesheet(b []byte) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		return c.Blob(http.StatusOK, "text/css; charset=utf-8", b)
	}
}

// page is the data of every template.
type page struct {
	Product   string
	LogoURL   string
	CSS       []string
	Title     string
	Heading   string
	Message   string
	Detail    string
	ActionURL string
	TxID      string
	CSRF      string
	Restart   string // the original request's query, to start again
	// Login.
	Username   string
	Error      string
	ErrorField string // "username", "password" or "" (whole form)
	// External sign-in buttons (external.go); NoPassword hides the form.
	External   []externalButton
	NoPassword bool
	// Passkey is the sign-in with a passkey alone (passkeylogin.go).
	Passkey *passkeySignIn
	// Consent.
	ClientName string
	// Unverified: the client named itself (clients.Client.Dynamic);
	// ClientSource is where its identity comes from: its metadata
	// document's host, or "registered dynamically".
	Unverified   bool
	ClientSource string
	Scopes       []scopeText
	// Offline: the client keeps access while the user is away (it gets
	// refresh tokens); Scopes lists it too.
	Offline bool
	// Links.
	RestartURL string
	// ContinueURL is a registered redirect URI (validated at registration:
	// never javascript:, data: or the like), trusted so that a native
	// app's private-use scheme is not filtered out by html/template.
	ContinueURL template.URL
	// Factor is the second-factor pages' data (factors.go).
	Factor *factorPage
}

type scopeText struct{ Name, Text string }

func (h *Handler) newPage(title string) page {
	css := []string{h.path + "/login/static/signet.css"}
	if h.customCSS != nil {
		css = append(css, h.path+"/login/static/custom.css")
	}
	return page{Product: h.cfg.ProductName, LogoURL: h.cfg.LogoURL, CSS: css, Title: title}
}

func (h *Handler) render(c echo.Context, status int, name string, p page) error {
	var b strings.Builder
	if err := h.tmpl.ExecuteTemplate(&b, name, p); err != nil {
		h.log.LogAttrs(c.Request().Context(), slog.LevelError, "render page", slog.String("page", name), slog.String("err", err.Error()))
		return c.String(http.StatusInternalServerError, "internal error")
	}
	return c.HTML(status, b.String())
}

// errorPage is shown when nothing may be redirected to (unknown client,
// unregistered redirect URI) and for the failures of the forms.
func (h *Handler) errorPage(c echo.Context, status int, heading, message, restart string) error {
	p := h.newPage(heading)
	p.Heading, p.Message = heading, message
	if restart != "" {
		p.RestartURL = h.path + "/oauth2/authorize?" + restart
	}
	return h.render(c, status, "error.html", p)
}

// cookieName is the name of a Signet cookie on this issuer: with the
// __Host- prefix on https, so that browsers take it only from this host,
// Secure and for Path=/ (a sibling subdomain cannot plant or shadow it).
// Plain http (loopback development) keeps the bare name: browsers refuse
// prefixed cookies without Secure there.
func (h *Handler) cookieName(name string) string {
	if h.secure {
		return "__Host-" + name
	}
	return name
}

func (h *Handler) cookie(name, value string, maxAge int) *http.Cookie {
	path := h.path
	if path == "" || h.secure {
		path = "/" // __Host- requires Path=/
	}
	return &http.Cookie{Name: h.cookieName(name), Value: value, Path: path, MaxAge: maxAge, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode}
}

// readCookie returns the value of the Signet cookie name, if sent.
func (h *Handler) readCookie(c echo.Context, name string) (string, bool) {
	ck, err := c.Cookie(h.cookieName(name))
	if err != nil {
		return "", false
	}
	return ck.Value, true
}

// browserID returns this browser's binding cookie, setting a new one when
// it has none or one this server did not make (a value chosen by the
// client is never adopted). It is never replaced while valid, so every tab
// shares it.
func (h *Handler) browserID(c echo.Context) (string, error) {
	ctx := c.Request().Context()
	if v, ok := h.readCookie(c, BrowserCookie); ok {
		valid, err := h.sess.ValidBrowserID(ctx, v)
		if err != nil {
			return "", err
		}
		if valid {
			return v, nil
		}
	}
	v, err := h.sess.NewBrowserID(ctx)
	if err != nil {
		return "", err
	}
	c.SetCookie(h.cookie(BrowserCookie, v, 0))
	return v, nil
}

// checkTransaction loads the transaction of a form and checks that it was
// made for this browser, that the form carries its token and that it is
// of one of kinds. The returned page error is already rendered.
func (h *Handler) checkTransaction(c echo.Context, kinds ...string) (sessions.Transaction, bool, error) {
	r := c.Request()
	id, token, restart := r.PostFormValue("tx"), r.PostFormValue("csrf"), r.PostFormValue("restart")
	if !validRestart(restart) {
		restart = ""
	}
	tx, err := h.sess.Transaction(r.Context(), id)
	if errors.Is(err, sessions.ErrNotFound) {
		return tx, false, h.errorPage(c, http.StatusBadRequest, "This page has expired",
			"The sign-in page you used has expired or was already submitted (for example with the back button). Nothing was changed. Start again to continue.", restart)
	}
	if err != nil {
		return tx, false, h.serverError(c, err)
	}
	bv, sent := h.readCookie(c, BrowserCookie)
	bound := sent && subtle.ConstantTimeCompare([]byte(sessions.Hash(bv)), []byte(tx.Browser)) == 1
	if !bound || subtle.ConstantTimeCompare([]byte(token), []byte(tx.CSRF)) != 1 || !slices.Contains(kinds, tx.Kind) {
		again := tx.Query
		if tx.Kind == "logout" || !validRestart(again) {
			again = "" // only an authorization request can be started again
		}
		return tx, false, h.errorPage(c, http.StatusForbidden, "Your browser did not confirm this request",
			"This form was not sent with the cookie this site set when it showed the form, so it was refused to protect your account. Make sure cookies are allowed for this site, then start again.", again)
	}
	return tx, true, nil
}

func validRestart(q string) bool {
	if q == "" || len(q) > 8192 {
		return false
	}
	v, err := url.ParseQuery(q)
	return err == nil && v.Get("client_id") != ""
}

// currentSession returns the browser's live SSO session whose user is
// still active, with its cookie value; ok is false when there is none.
func (h *Handler) currentSession(ctx context.Context, c echo.Context) (sessions.Session, string, bool, error) {
	cv, sent := h.readCookie(c, SessionCookie)
	if !sent {
		return sessions.Session{}, "", false, nil
	}
	s, err := h.sess.Lookup(ctx, cv)
	if errors.Is(err, sessions.ErrNotFound) {
		return sessions.Session{}, "", false, nil
	}
	if err != nil {
		return sessions.Session{}, "", false, err
	}
	if _, err := h.auth.ActiveUser(ctx, s.UserID); err != nil {
		if isNotFound(err) { // deleted or disabled
			return sessions.Session{}, "", false, nil
		}
		return sessions.Session{}, "", false, err // a store that did not answer is not a logged-out user
	}
	return s, cv, true, nil
}
