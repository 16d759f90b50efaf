package login

import (
	"errors"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/resource"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
)

// authzRequest is a validated authorization request (RFC 6749 §4.1.1,
// OIDC Core §3.1.2.1).
type authzRequest struct {
	client         clients.Client
	clientInstance string
	redirectURI    string
	redirectGiven  bool
	state, nonce   string
	scopes         []string
	resources      []string // RFC 8707; nil: the client's default audience
	challenge      string
	dpopJKT        string // RFC 9449 §10: the code is bound to this key
	promptNone     bool
	promptLogin    bool
	promptConsent  bool
	maxAge         int64 // -1: absent
	acrMFA         bool  // acr_values asks for a second factor (step-up)
	hint           *authority.IDTokenHint
	loginHint      string
	query          string // the request as received, to start again
}

// oauthError is an error that is redirected to the client.
type oauthError struct{ code, desc string }

// pageError is shown as a page: the client or its redirect URI is not
// known to be genuine, so nothing may be sent to it.
type pageError struct{ heading, message string }

// requestParams reads the authorization request: the query of a GET, the
// form body of a POST (OIDC Core §3.1.2.1).
func requestParams(c echo.Context) (url.Values, error) {
	r := c.Request()
	if r.Method == http.MethodGet {
		return url.ParseQuery(r.URL.RawQuery)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if mt != echo.MIMEApplicationForm {
		return nil, errors.New("the body must be application/x-www-form-urlencoded")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody+1))
	if err != nil || len(b) > maxFormBody {
		return nil, errors.New("the body is too large")
	}
	return url.ParseQuery(string(b))
}

// parseRequest validates q in the order RFC 6749 §4.1.2.1 requires: until
// the client and redirect URI are known good, errors are pages; after,
// they are redirects.
func (h *Handler) parseRequest(c echo.Context, q url.Values) (*authzRequest, *pageError, *oauthError) {
	ctx := c.Request().Context()
	one := func(k string) (string, bool) {
		switch len(q[k]) {
		case 0:
			return "", true
		case 1:
			return q[k][0], true
		}
		return "", false
	}
	clientID, ok := one("client_id")
	if !ok || clientID == "" {
		return nil, &pageError{"Sign-in request is not valid", "The application that sent you here did not say who it is (client_id is missing or repeated). Go back to the application and try again."}, nil
	}
	client, instance, err := h.auth.LoginClientInstance(ctx, clientID)
	if err != nil || client.Disabled {
		return nil, &pageError{"Unknown application", "The application that sent you here is not registered with this server, or is disabled. Go back to the application and contact its operator."}, nil
	}
	req := &authzRequest{client: client, clientInstance: instance, maxAge: -1, query: q.Encode()}
	redirect, ok := one("redirect_uri")
	switch {
	case !ok:
		return nil, &pageError{"Sign-in request is not valid", "The request names its return address (redirect_uri) more than once."}, nil
	case redirect == "" && len(client.RedirectURIs) == 1:
		req.redirectURI = client.RedirectURIs[0]
	case redirect == "":
		return nil, &pageError{"Sign-in request is not valid", "The request has no return address (redirect_uri), and the application has several."}, nil
	case !client.RedirectAllowed(redirect):
		return nil, &pageError{"Sign-in request is not valid", "The return address (redirect_uri) of this request is not registered for the application, so you were not sent back to it."}, nil
	default:
		req.redirectURI, req.redirectGiven = redirect, true
	}
	if !slices.Contains(client.GrantTypes, clients.GrantAuthorizationCode) {
		return req, nil, &oauthError{"unauthorized_client", "the client is not allowed the authorization code flow"}
	}
	// From here on the client and redirect URI are good: errors redirect.
	for _, k := range []string{"response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt", "max_age", "id_token_hint", "login_hint", "response_mode", "acr_values"} {
		if len(q[k]) > 1 {
			return req, nil, &oauthError{"invalid_request", "parameter " + k + " is repeated"}
		}
	}
	req.state = q.Get("state")
	if q.Has("request") {
		return req, nil, &oauthError{"request_not_supported", "request objects are not supported"}
	}
	if q.Has("request_uri") {
		return req, nil, &oauthError{"request_uri_not_supported", "request_uri is not supported"}
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		return req, nil, &oauthError{"invalid_request", "response_type is required"}
	default:
		return req, nil, &oauthError{"unsupported_response_type", "only response_type code is supported"}
	}
	if rm := q.Get("response_mode"); rm != "" && rm != "query" {
		return req, nil, &oauthError{"invalid_request", "only response_mode query is supported"}
	}
	req.nonce = q.Get("nonce")
	if len(req.nonce) > 512 || len(req.state) > 2048 {
		return req, nil, &oauthError{"invalid_request", "state or nonce is too long"}
	}
	if sc := q.Get("scope"); sc != "" {
		for _, s := range strings.Fields(sc) {
			if !slices.Contains(client.Scopes, s) {
				return req, nil, &oauthError{"invalid_scope", "scope " + printable(s) + " is not allowed for this client"}
			}
			if !slices.Contains(req.scopes, s) {
				req.scopes = append(req.scopes, s)
			}
		}
	} else {
		req.scopes = slices.Clone(client.DefaultScopes)
	}
	// The admin scope needs a second factor (factors.go): without second
	// factors configured, a browser login never gets it.
	if slices.Contains(req.scopes, authority.AdminScope) && h.cfg.Factors == nil {
		return req, nil, &oauthError{"invalid_scope", "the admin scope cannot be granted to a browser login"}
	}
	// RFC 8707 §2: each resource an absolute URI the client may have as an
	// audience; the code remembers them for the token request to narrow.
	aud, err := resource.Grant(client.Audiences, "", "", q["resource"])
	var re *resource.Error
	switch {
	case errors.As(err, &re):
		return req, nil, &oauthError{re.Code, re.Description}
	case aud[0] != "": // "": none named (empty values are absent, RFC 6749 §3.1)
		req.resources = aud
	}
	method, challenge := q.Get("code_challenge_method"), q.Get("code_challenge")
	switch {
	case challenge == "" && method != "":
		return req, nil, &oauthError{"invalid_request", "code_challenge_method without code_challenge"}
	case challenge == "" && client.RequiresPKCE():
		return req, nil, &oauthError{"invalid_request", "code_challenge is required (PKCE, S256)"}
	case challenge != "" && method != "S256":
		return req, nil, &oauthError{"invalid_request", "code_challenge_method must be S256"}
	case challenge != "" && !validChallenge(challenge):
		return req, nil, &oauthError{"invalid_request", "code_challenge must be 43 base64url characters"}
	}
	req.challenge = challenge
	if v := q["dpop_jkt"]; len(v) > 0 {
		if len(v) > 1 || !validChallenge(v[0]) { // a SHA-256 thumbprint has a challenge's shape
			return req, nil, &oauthError{"invalid_request", "dpop_jkt must be one RFC 7638 SHA-256 thumbprint (43 base64url characters)"}
		}
		req.dpopJKT = v[0]
	}
	for _, p := range strings.Fields(q.Get("prompt")) {
		switch p {
		case "none":
			req.promptNone = true
		case "login":
			req.promptLogin = true
		case "consent":
			req.promptConsent = true
		case "select_account":
		default:
			return req, nil, &oauthError{"invalid_request", "unsupported prompt value"}
		}
	}
	if req.promptNone && (req.promptLogin || req.promptConsent) {
		return req, nil, &oauthError{"invalid_request", "prompt none cannot be combined with other values"}
	}
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return req, nil, &oauthError{"invalid_request", "max_age must be a non-negative number of seconds"}
		}
		req.maxAge = n
	}
	if v := q.Get("id_token_hint"); v != "" {
		hint, err := h.auth.VerifyIDTokenHint(c.Request().Context(), v)
		if err != nil {
			return req, nil, &oauthError{"invalid_request", "id_token_hint is not an ID token of this issuer"}
		}
		req.hint = &hint
	}
	req.acrMFA = slices.Contains(strings.Fields(q.Get("acr_values")), sessions.ACRMFA)
	req.loginHint = q.Get("login_hint")
	if len(req.loginHint) > 256 {
		req.loginHint = ""
	}
	return req, nil, nil
}

func validChallenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// printable keeps an echoed value inside the error_description alphabet
// (RFC 6749 §5.2).
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}

// authorize is GET and POST /oauth2/authorize.
func (h *Handler) authorize(c echo.Context) error {
	q, err := requestParams(c)
	if err != nil {
		return h.errorPage(c, http.StatusBadRequest, "Sign-in request is not valid", "The request could not be read: "+err.Error()+".", "")
	}
	req, perr, oerr := h.parseRequest(c, q)
	if perr != nil {
		return h.errorPage(c, http.StatusBadRequest, perr.heading, perr.message, "")
	}
	if oerr != nil {
		return h.redirectError(c, req, oerr)
	}
	return h.proceed(c, req)
}

// proceed decides between the login page, the consent page and a code.
func (h *Handler) proceed(c echo.Context, req *authzRequest) error {
	ctx := c.Request().Context()
	sess, _, ok, err := h.currentSession(ctx, c)
	if err != nil {
		return h.serverError(c, err)
	}
	now := h.cfg.Now().Unix()
	// max_age=0 is a fresh login every time, like prompt=login.
	tooOld := req.maxAge == 0 || (req.maxAge > 0 && now-sess.AuthTime > req.maxAge)
	needLogin := !ok || req.promptLogin || tooOld
	if ok && req.hint != nil && req.hint.Sub != sess.UserID {
		needLogin = true // the client expects another user (OIDC Core §3.1.2.1)
	}
	if needLogin {
		if req.promptNone {
			return h.redirectError(c, req, &oauthError{"login_required", "the user is not logged in"})
		}
		return h.showLogin(c, req, "", "", "", http.StatusOK)
	}
	return h.continueSession(c, req, sess)
}

// afterLogin asks for consent when the client needs it, else issues the code.
func (h *Handler) afterLogin(c echo.Context, req *authzRequest, sess sessions.Session) error {
	if !req.client.FirstParty || req.client.Dynamic { // a dynamic client is never first-party
		ok, err := h.sess.Consented(c.Request().Context(), req.consent(sess.UserID))
		if err != nil {
			return h.serverError(c, err)
		}
		if !ok || req.promptConsent {
			if req.promptNone {
				return h.redirectError(c, req, &oauthError{"consent_required", "the user has not allowed this client the requested scopes"})
			}
			return h.showConsent(c, req, sess)
		}
	}
	return h.issueCode(c, req, sess)
}

// keepsAccess says whether the client would keep access while the user is
// away: it may use the refresh_token grant. A third-party client gets a
// refresh token only when the consent page said so and the user allowed
// it (OIDC Core §11 asks this for offline_access; clients that never ask
// for offline_access but refresh anyway, as MCP clients do, get the same
// page), so the page and the consent record carry it.
func keepsAccess(cl clients.Client) bool {
	return slices.Contains(cl.GrantTypes, clients.GrantRefreshToken)
}

// consent is what userID must have allowed for req: its scopes, for this
// instance of the client, and to keep access while away when it would.
func (req *authzRequest) consent(userID string) sessions.Consent {
	return sessions.Consent{UserID: userID, ClientID: req.client.ID, ClientInstance: req.clientInstance,
		Scopes: req.scopes, Offline: keepsAccess(req.client)}
}

// issueCode stores a code bound to everything the token endpoint must
// check and sends the browser back to the client.
func (h *Handler) issueCode(c echo.Context, req *authzRequest, sess sessions.Session) error {
	ctx := c.Request().Context()
	// Every path to a code, the consent form's too: the request's and
	// the requirement's second factor (enrol.go).
	if need, err := h.sessionNeeds(ctx, req, &sess); err != nil {
		return h.serverError(c, err)
	} else if need {
		return h.redirectError(c, req, &oauthError{"unmet_authentication_requirements", "this sign-in needs a second factor"})
	}
	code, err := h.sess.IssueCode(ctx, sessions.Code{
		ClientID: req.client.ID, ClientInstance: req.clientInstance, RedirectURI: req.redirectURI, RedirectGiven: req.redirectGiven,
		Challenge: req.challenge, Nonce: req.nonce, Scope: strings.Join(req.scopes, " "), Resources: req.resources, DPoPJKT: req.dpopJKT,
		UserID: sess.UserID, SID: sess.SID, Session: sess.Key, AuthTime: sess.AuthTime, AMR: sess.AMR(), ACR: sess.ACR(),
		// First party, or the consent just checked covers it.
		Offline: keepsAccess(req.client),
	})
	if err != nil {
		return h.serverError(c, err)
	}
	v := url.Values{"code": {code}}
	return h.sendBack(c, req, v)
}

func (h *Handler) redirectError(c echo.Context, req *authzRequest, oe *oauthError) error {
	return h.sendBack(c, req, url.Values{"error": {oe.code}, "error_description": {oe.desc}})
}

// sendBack redirects to the client's redirect URI with v, state and iss
// (RFC 9207) added to its query. After a form POST it answers with a page
// that continues there instead: the CSP's form-action 'self' also applies
// to the redirects that follow a form submission.
func (h *Handler) sendBack(c echo.Context, req *authzRequest, v url.Values) error {
	if req.state != "" {
		v.Set("state", req.state)
	}
	v.Set("iss", h.issuer)
	target := req.redirectURI
	if strings.Contains(target, "?") {
		target += "&" + v.Encode()
	} else {
		target += "?" + v.Encode()
	}
	return h.navigate(c, target)
}

// navigate sends the browser to target: a 302 for a GET, and for a form
// POST a page that continues by itself (meta refresh) and with a link.
func (h *Handler) navigate(c echo.Context, target string) error {
	if c.Request().Method == http.MethodGet {
		return c.Redirect(http.StatusFound, target)
	}
	p := h.newPage("Continue")
	p.Heading, p.ContinueURL = "Continue", template.URL(target)
	return h.render(c, http.StatusOK, "continue.html", p)
}

// showLogin starts a login transaction and renders the login form.
func (h *Handler) showLogin(c echo.Context, req *authzRequest, username, msg, field string, status int) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	data, err := h.beginDiscoverable() // the passkey button (passkeylogin.go)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: "login", Browser: sessions.Hash(browser), Query: req.query,
		ClientInstance: req.clientInstance, Data: data})
	if err != nil {
		return h.serverError(c, err)
	}
	return h.renderLogin(c, req, tx, username, msg, field, status)
}

func (h *Handler) renderLogin(c echo.Context, req *authzRequest, tx sessions.Transaction, username, msg, field string, status int) error {
	p := h.newPage("Sign in")
	p.Heading = "Sign in"
	p.setClient(req.client)
	p.ActionURL, p.TxID, p.CSRF, p.Restart = h.path+"/login/password", tx.ID, tx.CSRF, req.query
	p.Username, p.Error, p.ErrorField = username, msg, field
	p.External, p.NoPassword = h.externalButtons(), !h.passwordLogin()
	if p.Username == "" {
		p.Username = req.loginHint
	}
	h.setPasskeyButton(c, &p, tx)
	return h.render(c, status, "login.html", p)
}

// showConsent starts a consent transaction and renders the consent page.
func (h *Handler) showConsent(c echo.Context, req *authzRequest, sess sessions.Session) error {
	browser, err := h.browserID(c)
	if err != nil {
		return h.serverError(c, err)
	}
	tx, err := h.sess.NewTransaction(c.Request().Context(), sessions.Transaction{Kind: "consent", Browser: sessions.Hash(browser), Query: req.query, UserID: sess.UserID,
		ClientInstance: req.clientInstance, Scopes: req.scopes, Offline: keepsAccess(req.client)})
	if err != nil {
		return h.serverError(c, err)
	}
	p := h.newPage("Allow access")
	p.setClient(req.client)
	p.Heading = p.markedName() + " wants to access your account"
	p.ActionURL, p.TxID, p.CSRF, p.Restart = h.path+"/login/consent", tx.ID, tx.CSRF, req.query
	for _, s := range req.scopes {
		if s != "offline_access" { // it means what keepsAccess says, listed once below
			p.Scopes = append(p.Scopes, scopeText{Name: s, Text: describeScope(s, p.ClientName)})
		}
	}
	// In the list itself, not only in the note: an operator's own
	// template that shows the list still tells the user.
	if p.Offline = keepsAccess(req.client); p.Offline {
		p.Scopes = append(p.Scopes, scopeText{Name: "offline_access", Text: describeScope("offline_access", p.ClientName)})
	}
	return h.render(c, http.StatusOK, "consent.html", p)
}

// setClient names the client on a page (consent, login, device). A client
// that registered itself, or that its own document names, chose its name:
// the page marks it unverified and says where its identity comes from.
func (p *page) setClient(cl clients.Client) {
	p.ClientName = clientName(cl)
	if p.Unverified = cl.Dynamic; p.Unverified {
		p.ClientSource = "registered dynamically"
		if host := cl.MetadataDocumentHost(); host != "" {
			p.ClientSource = host
		}
	}
}

// markedName is the client's name for a heading: "(unverified)" added
// when it chose its name itself.
func (p *page) markedName() string {
	if p.Unverified {
		return p.ClientName + " (unverified)"
	}
	return p.ClientName
}

func clientName(cl clients.Client) string {
	if cl.ClientName != "" {
		return cl.ClientName
	}
	return cl.ID
}

// describeScope says in plain words what a scope gives the client.
func describeScope(s, client string) string {
	switch s {
	case "openid":
		return "Know who you are: your account identifier"
	case "profile":
		return "See your name and username"
	case "email":
		return "See your email address and whether it is verified"
	case "offline_access":
		return "Keep this access while you are away, until you withdraw it"
	}
	return "Use the permission \u201c" + s + "\u201d"
}

// isNotFound reports a missing record.
func isNotFound(err error) bool {
	return errors.Is(err, storage.ErrNotFound) || errors.Is(err, sessions.ErrNotFound)
}
