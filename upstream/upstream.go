// Package upstream is sign-in through other OpenID Connect providers: a
// "Sign in with …" button on Signet's login page per configured provider,
// the authorization code flow with PKCE, state and nonce against it, the
// checks of its ID token, and just-in-time Signet users linked to the
// provider's issuer and subject (never to an email address). The login
// surface mounts it through login.External and finishes the login with
// login.Handler.CompleteExternal, as after a password but with what the
// provider said of the sign-in (its ID token's amr) as the session's
// factors, never a password.
//
// The flow keeps nothing in storage while it runs: its state is a login
// transaction of package sessions (MAC'd, bound to the browser's cookie,
// single use) that carries the original authorization request; the PKCE
// verifier and the nonce are derived from that transaction's secret token,
// which never leaves the server.
package upstream

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// Fields of a Signet user that an upstream claim may fill (Provider.Claims).
const (
	FieldEmail = "email"
	FieldName  = "name"
	FieldRoles = "roles"
)

// DiscoveryPath is where a provider publishes its metadata (OpenID
// Connect Discovery §4).
const DiscoveryPath = "/.well-known/openid-configuration"

// linksBucket maps sha256(issuer NUL subject) to a Signet user id.
const linksBucket = "upstream_links"

// maxIDTokenLifetime bounds how far ahead an upstream ID token's exp may be.
const maxIDTokenLifetime = 24 * time.Hour

// Provider is one upstream identity provider.
type Provider struct {
	// ID names it in URLs (/login/upstream/{id}) and usernames.
	ID string
	// Name is the button's text: "Sign in with {Name}".
	Name string
	// Issuer is its issuer URL, exactly as its ID tokens' iss.
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes asked for (openid among them).
	Scopes []string
	// Claims map a Signet user field (FieldEmail, FieldName, FieldRoles)
	// to the upstream ID token claim that fills it. Nothing else of the
	// upstream's token reaches the user.
	Claims map[string]string
	// NoLogout keeps the provider's session when the Signet session it
	// began ends by RP-initiated logout (login.upstreams[].logout: false).
	// By default a provider whose discovery document has an
	// end_session_endpoint is sent there (OpenID Connect RP-Initiated
	// Logout 1.0).
	NoLogout bool
	// TrustAMR takes the provider's word for a second factor: an "mfa" in
	// its ID token's amr meets Signet's second-factor requirement
	// (login.upstreams[].trust_amr). By default what the provider says is
	// shown in amr and meets nothing: a request that needs a second
	// factor asks for Signet's own.
	TrustAMR bool
}

// Config configures the upstream sign-in.
type Config struct {
	Providers []Provider
	// PasswordLogin keeps the username and password form.
	PasswordLogin bool
	// Issuer is Signet's issuer URL (the callback URLs are under it).
	Issuer   string
	Fetcher  *outbound.Fetcher
	Sessions *sessions.Manager
	Users    *users.Registry
	Store    storage.Store
	// KEK seals the providers' ID tokens kept with the sessions for their
	// logout (keys.SealSecret).
	KEK    []byte
	Leeway time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Upstreams is the upstream sign-in; it implements login.External.
type Upstreams struct {
	cfg  Config
	byID map[string]*Provider
	base string // Signet's issuer without trailing slash
}

var _ login.External = (*Upstreams)(nil)

// New checks cfg.
func New(cfg Config) (*Upstreams, error) {
	if cfg.Fetcher == nil || cfg.Sessions == nil || cfg.Users == nil || cfg.Store == nil || len(cfg.KEK) != 32 {
		return nil, errors.New("upstream: fetcher, sessions, users, store and a 32-byte KEK are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	u := &Upstreams{cfg: cfg, byID: map[string]*Provider{}, base: strings.TrimSuffix(cfg.Issuer, "/")}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		if p.ID == "" || u.byID[p.ID] != nil {
			return nil, fmt.Errorf("upstream: provider id %q is empty or repeated", p.ID)
		}
		u.byID[p.ID] = p
	}
	return u, nil
}

// Buttons implements login.External.
func (u *Upstreams) Buttons() []login.ExternalButton {
	out := make([]login.ExternalButton, 0, len(u.cfg.Providers))
	for _, p := range u.cfg.Providers {
		out = append(out, login.ExternalButton{Name: p.Name, ActionPath: "/login/upstream/" + p.ID})
	}
	return out
}

// PasswordLogin implements login.External.
func (u *Upstreams) PasswordLogin() bool { return u.cfg.PasswordLogin }

// Register implements login.External.
func (u *Upstreams) Register(e *echo.Echo, h *login.Handler, sec echo.MiddlewareFunc) {
	e.POST("/login/upstream/:id", func(c echo.Context) error { return u.start(c, h) }, sec)
	e.GET("/login/upstream/:id/callback", func(c echo.Context) error { return u.callback(c, h) }, sec)
	e.GET("/login/upstream/:id/logout/callback", func(c echo.Context) error { return u.logoutCallback(c, h) }, sec)
}

func (u *Upstreams) callbackURL(p *Provider) string {
	return u.base + "/login/upstream/" + p.ID + "/callback"
}

// LogoutCallbackURL is where p sends the browser back after its logout:
// the post_logout_redirect_uri to register at the provider.
func (u *Upstreams) LogoutCallbackURL(p *Provider) string {
	return u.base + "/login/upstream/" + p.ID + "/logout/callback"
}

// kind is the transaction kind of a flow through p: a state made for one
// provider is refused on another's callback.
func kind(p *Provider) string { return "upstream:" + p.ID }

// derive returns a value only the server can compute from the flow's
// transaction: its CSRF token is a MAC under the transactions' key and is
// never sent anywhere in this flow.
func derive(label string, tx sessions.Transaction) string {
	h := sha256.Sum256([]byte(label + "\x00" + tx.CSRF))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// metadata is the part of the provider's discovery document used here.
type metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
}

func decodeMetadata(b []byte) (metadata, error) {
	var m metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("discovery document is not a JSON object: %w", err)
	}
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" || m.JWKSURI == "" {
		return m, errors.New("discovery document lacks authorization_endpoint, token_endpoint or jwks_uri")
	}
	return m, nil
}

// discover reads p's metadata through the hardened fetcher (cached); the
// document must name p's issuer (OpenID Connect Discovery §4.3).
func (u *Upstreams) discover(ctx context.Context, p *Provider) (metadata, error) {
	m, err := outbound.Get(ctx, u.cfg.Fetcher, strings.TrimSuffix(p.Issuer, "/")+DiscoveryPath, decodeMetadata)
	if err != nil {
		return m, fmt.Errorf("discovery of %s: %w", p.Issuer, err)
	}
	if m.Issuer != p.Issuer {
		return m, fmt.Errorf("discovery of %s names the issuer %q", p.Issuer, m.Issuer)
	}
	if !browserURL(m.AuthorizationEndpoint) {
		return m, fmt.Errorf("discovery of %s: authorization_endpoint %q is not an https URL", p.Issuer, m.AuthorizationEndpoint)
	}
	return m, nil
}

// browserURL says whether Signet may send a browser to raw: https, or
// http to a loopback host (a development provider).
func browserURL(raw string) bool {
	au, err := url.Parse(raw)
	return err == nil && (au.Scheme == "https" || au.Scheme == "http") && au.Host != "" && au.User == nil &&
		(au.Scheme == "https" || outbound.IsLoopbackURL(raw))
}

// withQuery appends q to endpoint, which may have a query of its own.
func withQuery(endpoint string, q url.Values) string {
	if strings.Contains(endpoint, "?") {
		return endpoint + "&" + q.Encode()
	}
	return endpoint + "?" + q.Encode()
}

// start is POST /login/upstream/{id}: a sign-in page's button (an
// application's, the account page's, the device page's). It checks the
// page's transaction as the password form would and sends the browser to
// the provider.
func (u *Upstreams) start(c echo.Context, h *login.Handler) error {
	p := u.byID[c.Param("id")]
	if p == nil {
		return h.ExternalError(c, http.StatusNotFound, "Unknown sign-in provider", "This server has no such sign-in provider. Go back and choose another way to sign in.")
	}
	tx, ok, err := h.ExternalTransaction(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	md, err := u.discover(ctx, p)
	if err != nil {
		return u.unreachable(c, h, p, err)
	}
	// The flow remembers the sign-in it continues (an application's, the
	// account page's, the device page's) inside the MAC'd transaction.
	flow, err := u.cfg.Sessions.NewTransaction(ctx, login.ExternalFlow(tx, kind(p)))
	if err != nil {
		return h.ExternalServerError(c, err)
	}
	challenge := sha256.Sum256([]byte(derive("pkce", flow)))
	q := url.Values{
		"response_type": {"code"}, "client_id": {p.ClientID}, "redirect_uri": {u.callbackURL(p)},
		"scope": {strings.Join(p.Scopes, " ")}, "state": {flow.ID}, "nonce": {derive("nonce", flow)},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}
	return h.Navigate(c, withQuery(md.AuthorizationEndpoint, q))
}

func (u *Upstreams) unreachable(c echo.Context, h *login.Handler, p *Provider, err error) error {
	u.cfg.Logger.LogAttrs(c.Request().Context(), slog.LevelWarn, "upstream sign-in", slog.String("provider", p.ID), slog.String("err", err.Error()))
	return h.ExternalError(c, http.StatusBadGateway, "Sign-in provider unavailable",
		"Signing in with "+p.Name+" did not work: the provider could not be reached or gave an answer this server does not accept. Try again later or choose another way to sign in.")
}

// callback is GET /login/upstream/{id}/callback: the provider sends the
// browser back with a code (or an error) and the state.
func (u *Upstreams) callback(c echo.Context, h *login.Handler) error {
	p := u.byID[c.Param("id")]
	if p == nil {
		return h.ExternalError(c, http.StatusNotFound, "Unknown sign-in provider", "This server has no such sign-in provider.")
	}
	ctx := c.Request().Context()
	q := c.QueryParams()
	flow, err := u.cfg.Sessions.Transaction(ctx, q.Get("state"))
	switch {
	case errors.Is(err, sessions.ErrNotFound) || err == nil && flow.Kind != kind(p):
		return h.ExternalError(c, http.StatusBadRequest, "This sign-in has expired",
			"This sign-in was already completed, has expired, or was not started here. Nothing was changed. Start again where you were signing in (the application, the device page or your account page).")
	case err != nil:
		return h.ExternalServerError(c, err)
	}
	// RFC 9207: a provider that names itself must name this one (a
	// response of another provider sent here: mix-up).
	if q.Has("iss") && q.Get("iss") != p.Issuer {
		return h.ExternalError(c, http.StatusBadRequest, "Sign-in answer is not valid",
			"The answer did not come from "+p.Name+". Nothing was changed. Start again where you were signing in (the application, the device page or your account page).")
	}
	if e := q.Get("error"); e != "" {
		return h.ExternalError(c, http.StatusForbidden, "Sign-in was refused",
			p.Name+" did not sign you in (it answered "+printable(e)+"). Start again where you were signing in (the application, the device page or your account page), or choose another way to sign in.")
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		return h.ExternalError(c, http.StatusBadRequest, "Sign-in answer is not valid", p.Name+" sent you back without a code. Start again where you were signing in (the application, the device page or your account page).")
	}
	md, err := u.discover(ctx, p)
	if err != nil {
		return u.unreachable(c, h, p, err)
	}
	id, raw, err := u.exchange(ctx, p, md, flow, code)
	if err != nil {
		return u.unreachable(c, h, p, err)
	}
	userID, err := u.link(ctx, p, id)
	if err != nil {
		return h.ExternalServerError(c, err)
	}
	up, err := u.keepForLogout(p, md, userID, raw)
	if err != nil {
		return h.ExternalServerError(c, err)
	}
	return h.CompleteExternal(c, flow, userID, up, attested(p, id.Payload, u.cfg.Now()))
}

// registeredAMR are the values of the IANA "Authentication Method
// Reference Values" registry (RFC 8176 §5.1): the only ones Signet
// repeats, since its relying parties can know what they mean.
var registeredAMR = []string{"face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin",
	"pop", "pwd", "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia"}

// maxAMR bounds the methods read from an ID token's amr.
const maxAMR = 16

// attested is what p's ID token (payload) says of the sign-in, as the
// session's factors at now: each registered amr value once, marked as
// p's and trusted when p is; anything else in amr (unregistered values,
// non-strings, a malformed claim) is dropped. No usable value gives no
// factor: CompleteExternal then records a sign-in at p that said nothing.
func attested(p *Provider, payload []byte, now time.Time) []sessions.Factor {
	var cl struct {
		AMR []json.RawMessage `json:"amr"`
	}
	if json.Unmarshal(payload, &cl) != nil {
		return nil
	}
	var out []sessions.Factor
	for i, raw := range cl.AMR {
		var m string
		if i >= maxAMR || json.Unmarshal(raw, &m) != nil || !slices.Contains(registeredAMR, m) ||
			slices.ContainsFunc(out, func(f sessions.Factor) bool { return f.Method == m }) {
			continue
		}
		out = append(out, sessions.Factor{Method: m, At: now.Unix(), Upstream: p.ID, Trusted: p.TrustAMR})
	}
	return out
}

// exchange redeems code at the provider's token endpoint and checks the
// ID token it answers with.
func (u *Upstreams) exchange(ctx context.Context, p *Provider, md metadata, flow sessions.Transaction, code string) (*clientauth.JWT, string, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {u.callbackURL(p)}, "code_verifier": {derive("pkce", flow)}}
	status, body, err := u.cfg.Fetcher.PostForm(ctx, md.TokenEndpoint, form, func(r *http.Request) {
		// client_secret_basic: id and secret form-encoded first (RFC 6749 §2.3.1).
		r.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))
	})
	if err != nil {
		return nil, "", fmt.Errorf("token request: %w", err)
	}
	var tr struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || status != http.StatusOK {
		return nil, "", fmt.Errorf("token request: status %d, error %q", status, printable(tr.Error))
	}
	if tr.IDToken == "" {
		return nil, "", errors.New("token response has no id_token")
	}
	t, err := u.checkIDToken(ctx, p, md, tr.IDToken, derive("nonce", flow))
	return t, tr.IDToken, err
}

// checkIDToken applies OpenID Connect Core §3.1.3.7: signature by one of
// the provider's keys (the algorithm is the key's), iss, aud, azp, the
// times and the nonce.
func (u *Upstreams) checkIDToken(ctx context.Context, p *Provider, md metadata, raw, nonce string) (*clientauth.JWT, error) {
	t, err := clientauth.ParseJWT(raw)
	if err != nil {
		return nil, fmt.Errorf("ID token: %w", err)
	}
	ok, err := t.VerifyAt(ctx, u.cfg.Fetcher, md.JWKSURI) // refetched once on an unknown kid: the provider may have rotated
	if err != nil {
		return nil, fmt.Errorf("keys of %s: %w", p.Issuer, err)
	}
	if !ok {
		return nil, errors.New("ID token signature does not verify with the provider's keys")
	}
	var cl struct {
		Nonce *string `json:"nonce"`
		AZP   *string `json:"azp"`
	}
	if err := json.Unmarshal(t.Payload, &cl); err != nil {
		return nil, fmt.Errorf("ID token claims: %w", err)
	}
	switch {
	case t.Iss != p.Issuer:
		return nil, fmt.Errorf("ID token iss %q is not %s", printable(t.Iss), p.Issuer)
	case !slices.Contains(t.Aud, p.ClientID):
		return nil, errors.New("ID token aud does not name this client")
	case cl.AZP != nil && *cl.AZP != p.ClientID, cl.AZP == nil && len(t.Aud) > 1:
		return nil, errors.New("ID token azp is not this client")
	case cl.Nonce == nil || subtle.ConstantTimeCompare([]byte(*cl.Nonce), []byte(nonce)) != 1:
		return nil, errors.New("ID token nonce does not match this sign-in")
	case t.Sub == "" || len(t.Sub) > 255:
		return nil, errors.New("ID token sub is empty or longer than 255 characters")
	}
	if p := t.TimeProblem("ID token", u.cfg.Now(), u.cfg.Leeway, maxIDTokenLifetime); p != "" {
		return nil, errors.New(p)
	}
	return t, nil
}

// linkKey is where the link of issuer and subject is stored.
func linkKey(iss, sub string) string {
	h := sha256.Sum256([]byte(iss + "\x00" + sub))
	return hex.EncodeToString(h[:])
}

// link returns the Signet user linked to the token's issuer and subject,
// creating it on the first sign-in. Only issuer and subject link: an
// email address (verified or not) never finds an existing user. The
// mapped profile fields are refreshed on every sign-in.
func (u *Upstreams) link(ctx context.Context, p *Provider, t *clientauth.JWT) (string, error) {
	key := linkKey(t.Iss, t.Sub)
	prof := profile(p, t.Payload)
	var id string
	err := u.cfg.Store.View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(linksBucket, key)
		if err == nil {
			id = string(b)
			return nil
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("upstream link: %w", err)
	}
	if id != "" {
		if prof.changes(ctx, u.cfg.Users, id) {
			if _, _, err := u.cfg.Users.Update(ctx, id, prof.patch); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return "", fmt.Errorf("upstream user profile: %w", err)
			}
		}
		return id, nil
	}
	// A password nobody knows: the user signs in through the provider only.
	var pw [32]byte
	_, _ = rand.Read(pw[:])
	nu := prof.create
	nu.Username, nu.Password = p.ID+"-"+key[:20], base64.RawURLEncoding.EncodeToString(pw[:])
	usr, err := u.cfg.Users.Create(ctx, nu)
	if err != nil {
		return "", fmt.Errorf("create upstream user: %w", err)
	}
	id = usr.ID
	err = u.cfg.Store.Update(ctx, func(tx storage.Tx) error {
		if b, err := tx.Get(linksBucket, key); err == nil {
			id = string(b) // a concurrent first sign-in linked first
			return nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return tx.Put(linksBucket, key, []byte(usr.ID))
	})
	if err != nil {
		return "", fmt.Errorf("upstream link: %w", err)
	}
	if id != usr.ID {
		_ = u.cfg.Users.Delete(ctx, usr.ID)
	}
	u.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "upstream user created", slog.String("provider", p.ID), slog.String("user_id", id))
	return id, nil
}

type mapped struct {
	create users.NewUser
	patch  users.Patch
}

// changes says whether the stored user differs from what the provider
// says now: a returning user's sign-in writes nothing when nothing changed.
func (m mapped) changes(ctx context.Context, reg *users.Registry, id string) bool {
	if m.patch == (users.Patch{}) {
		return false
	}
	cur, err := reg.Get(ctx, id)
	if err != nil {
		return true // Update reports it
	}
	return m.patch.Email != nil && (cur.Email != *m.patch.Email || cur.EmailVerified != *m.patch.EmailVerified) ||
		m.patch.Name != nil && cur.Name != *m.patch.Name ||
		m.patch.Roles != nil && !slices.Equal(cur.Roles, *m.patch.Roles)
}

// profile reads the declared claims of payload into a new user and a
// patch; values that would not be valid are left out.
func profile(p *Provider, payload []byte) mapped {
	var all map[string]json.RawMessage
	_ = json.Unmarshal(payload, &all)
	var m mapped
	str := func(name string) (string, bool) {
		var s string
		if name == "" || json.Unmarshal(all[name], &s) != nil {
			return "", false
		}
		return s, true
	}
	if s, ok := str(p.Claims[FieldEmail]); ok && len(s) <= 254 && strings.Contains(s, "@") && !strings.ContainsAny(s, " \t\r\n\"\\") {
		var verified bool
		_ = json.Unmarshal(all["email_verified"], &verified)
		m.create.Email, m.create.EmailVerified = s, verified
		m.patch.Email, m.patch.EmailVerified = &m.create.Email, &m.create.EmailVerified
	}
	if s, ok := str(p.Claims[FieldName]); ok && len(s) <= 256 && !strings.ContainsAny(s, "\r\n\x00") {
		m.create.Name = s
		m.patch.Name = &m.create.Name
	}
	if name := p.Claims[FieldRoles]; name != "" {
		var list []string
		if s, ok := str(name); ok {
			list = []string{s}
		} else {
			_ = json.Unmarshal(all[name], &list)
		}
		roles := []string{}
		for _, r := range list {
			if clients.ValidScopeToken(r) && !users.Privileged(r) && !slices.Contains(roles, r) { // an upstream group never makes a Signet admin
				roles = append(roles, r)
			}
		}
		m.create.Roles = roles
		m.patch.Roles = &m.create.Roles
	}
	return m
}

// printable keeps a provider's value safe to show and log.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
