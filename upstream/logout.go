package upstream

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/sessions"
)

// The provider's own logout (OpenID Connect RP-Initiated Logout 1.0, with
// Signet as the provider's relying party). When a Signet session begun at
// a provider ends by RP-initiated logout in a browser, the browser is
// sent to the provider's end_session_endpoint with the provider's ID
// token as id_token_hint, Signet's client_id, the logout callback as
// post_logout_redirect_uri and a state; the provider ends its session and
// sends the browser back, and the logout continues where it would have
// gone (the relying party's post_logout_redirect_uri or the signed-out
// page). The ID token is kept with the Signet session, sealed under the
// KEK; the state is a transaction of package sessions (MAC'd, bound to
// the browser's cookie, used once) whose query is where to go after.

// maxKeptIDToken bounds the ID token kept with a session: a longer one is
// not kept, and that provider's session is then not ended from here.
const maxKeptIDToken = 8 << 10

// logoutKind is the transaction kind of p's logout: a login state, or
// another provider's logout state, is refused on p's logout callback.
func logoutKind(p *Provider) string { return "upstream-logout:" + p.ID }

// sealAAD binds a sealed ID token to its provider and user: copied onto
// another session's record it does not open.
func sealAAD(providerID, userID string) string {
	return "upstream-id-token:" + providerID + "/" + userID
}

// logoutOn says whether p's session is to be ended from here, as its
// metadata stands.
func logoutOn(p *Provider, md metadata) bool {
	return !p.NoLogout && md.EndSessionEndpoint != ""
}

// keepForLogout is what the session of a sign-in through p keeps: the
// provider's id and, when its session is to be ended at logout, the ID
// token sealed under the KEK.
func (u *Upstreams) keepForLogout(p *Provider, md metadata, userID, rawIDToken string) (*sessions.Upstream, error) {
	up := &sessions.Upstream{Provider: p.ID}
	if !logoutOn(p, md) || len(rawIDToken) > maxKeptIDToken {
		return up, nil
	}
	sealed, err := keys.SealSecret(u.cfg.KEK, sealAAD(p.ID, userID), []byte(rawIDToken))
	if err != nil {
		return nil, fmt.Errorf("seal the ID token of %s: %w", p.ID, err)
	}
	up.SealedIDToken = sealed
	return up, nil
}

// Logout implements login.External: it sends the browser to the
// provider's end_session_endpoint when the provider advertises one, its
// logout is not turned off and the session kept its ID token; otherwise
// sent is false and the Signet logout goes on as without a provider.
func (u *Upstreams) Logout(c echo.Context, h *login.Handler, userID string, up *sessions.Upstream, then string) (bool, string, error) {
	p := u.byID[up.Provider]
	if p == nil { // no longer configured
		return false, "", nil
	}
	if p.NoLogout || len(up.SealedIDToken) == 0 {
		return false, p.Name, nil
	}
	ctx := c.Request().Context()
	fail := func(err error) (bool, string, error) {
		u.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "upstream logout not done", slog.String("provider", p.ID), slog.String("err", err.Error()))
		return false, p.Name, nil
	}
	md, err := u.discover(ctx, p)
	if err != nil {
		return fail(err)
	}
	if md.EndSessionEndpoint == "" {
		return false, p.Name, nil
	}
	if !browserURL(md.EndSessionEndpoint) {
		return fail(fmt.Errorf("end_session_endpoint %q is not an https URL", md.EndSessionEndpoint))
	}
	idToken, err := keys.OpenSecret(u.cfg.KEK, sealAAD(p.ID, userID), up.SealedIDToken)
	if err != nil {
		return fail(fmt.Errorf("open the kept ID token: %w", err))
	}
	browser, err := h.ExternalBrowser(c)
	if err != nil {
		return true, "", h.ExternalServerError(c, err)
	}
	tx, err := u.cfg.Sessions.NewTransaction(ctx, sessions.Transaction{Kind: logoutKind(p), Browser: browser, Query: then})
	if err != nil {
		return true, "", h.ExternalServerError(c, err)
	}
	q := url.Values{"id_token_hint": {string(idToken)}, "client_id": {p.ClientID},
		"post_logout_redirect_uri": {u.LogoutCallbackURL(p)}, "state": {tx.ID}}
	u.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "upstream logout", slog.String("provider", p.ID), slog.String("user_id", userID))
	return true, p.Name, h.Navigate(c, withQuery(md.EndSessionEndpoint, q))
}

// logoutCallback is GET /login/upstream/{id}/logout/callback: the
// provider sends the browser back after its logout, with the state.
func (u *Upstreams) logoutCallback(c echo.Context, h *login.Handler) error {
	p := u.byID[c.Param("id")]
	if p == nil {
		return h.ExternalError(c, http.StatusNotFound, "Unknown sign-in provider", "This server has no such sign-in provider.")
	}
	tx, err := u.cfg.Sessions.Transaction(c.Request().Context(), c.QueryParam("state"))
	switch {
	case errors.Is(err, sessions.ErrNotFound) || err == nil && tx.Kind != logoutKind(p):
		return h.ExternalError(c, http.StatusBadRequest, "This sign-out has expired",
			"This sign-out was already completed, has expired, or was not started here. Nothing was changed.")
	case err != nil:
		return h.ExternalServerError(c, err)
	}
	return h.ContinueLogout(c, tx, p.Name)
}
