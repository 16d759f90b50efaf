package login

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/users"
)

// Passkeys (WebAuthn, github.com/go-webauthn/webauthn) as a second factor:
// added on the account page, used on the code page instead of a code. The
// ceremony runs in the browser (static/webauthn.js, the only script of the
// pages, served from here); its challenge travels in the MAC'd, single-use
// transaction of the form.

// cspScript is the policy of the pages that run webauthn.js: csp plus this
// server's scripts (no inline script).
const cspScript = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// allowWebAuthn lets the page being answered run webauthn.js (cspScript)
// and returns the script's URL: the one way a page gets passkey script.
func (h *Handler) allowWebAuthn(c echo.Context) string {
	c.Response().Header().Set("Content-Security-Policy", cspScript)
	return h.path + "/login/static/webauthn.js"
}

// setupPasskeys configures WebAuthn for the issuer: the RP ID is its host
// name, the only origin its origin. An IP address cannot be an RP ID, so
// an issuer on one has no passkeys.
func (h *Handler) setupPasskeys(u *url.URL) error {
	if h.cfg.Factors == nil || net.ParseIP(u.Hostname()) != nil {
		return nil
	}
	wa, err := webauthn.New(&webauthn.Config{RPID: u.Hostname(), RPDisplayName: h.cfg.ProductName, RPOrigins: []string{u.Scheme + "://" + u.Host}})
	if err != nil {
		return fmt.Errorf("login: passkeys: %w", err)
	}
	h.passkeys = wa
	return nil
}

// waUser is a user as WebAuthn sees them: the user handle is the user id.
type waUser struct {
	u     users.User
	creds []webauthn.Credential
}

func (w waUser) WebAuthnID() []byte          { return []byte(w.u.ID) }
func (w waUser) WebAuthnName() string        { return w.u.Username }
func (w waUser) WebAuthnDisplayName() string { return w.u.Username }
func (w waUser) WebAuthnCredentials() []webauthn.Credential {
	return w.creds
}

func (h *Handler) waUser(ctx context.Context, u users.User) (waUser, []mfa.Passkey, error) {
	list, err := h.cfg.Factors.Passkeys(ctx, u.ID)
	w := waUser{u: u}
	for _, p := range list {
		w.creds = append(w.creds, p.Credential)
	}
	return w, list, err
}

// ceremony is what a form's transaction keeps: the challenge and the
// options shown, to show the form again.
type ceremony struct {
	Session webauthn.SessionData `json:"s"`
	Options json.RawMessage      `json:"o"`
}

// beginAssertion makes the options of a passkey sign-in for user, or nil
// when they have no passkey.
func (h *Handler) beginAssertion(ctx context.Context, u users.User) (json.RawMessage, error) {
	if h.passkeys == nil {
		return nil, nil
	}
	w, _, err := h.waUser(ctx, u)
	if err != nil || len(w.creds) == 0 {
		return nil, err
	}
	opts, sd, err := h.passkeys.BeginLogin(w, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("passkey options: %w", err)
	}
	return marshalCeremony(sd, opts)
}

func marshalCeremony(sd *webauthn.SessionData, opts any) (json.RawMessage, error) {
	o, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ceremony{Session: *sd, Options: o})
}

// ceremonyOptions returns the options of a transaction's ceremony, as
// the page's data-options attribute.
func ceremonyOptions(data json.RawMessage) string {
	var cm ceremony
	if len(data) == 0 || json.Unmarshal(data, &cm) != nil {
		return ""
	}
	return string(cm.Options)
}

// verifyPasskey checks a passkey assertion (the form's credential field)
// against the transaction's challenge and user's passkeys. Any refusal is
// mfa.ErrBadCode: it counts as a failed sign-in.
func (h *Handler) verifyPasskey(ctx context.Context, u users.User, data json.RawMessage) func(string) error {
	return func(credential string) error {
		var cm ceremony
		if h.passkeys == nil || len(data) == 0 || json.Unmarshal(data, &cm) != nil {
			return mfa.ErrBadCode
		}
		parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(credential))
		if err != nil {
			return mfa.ErrBadCode
		}
		w, _, err := h.waUser(ctx, u)
		if err != nil {
			return err
		}
		cred, err := h.passkeys.ValidateLogin(w, cm.Session, parsed)
		if err != nil {
			h.log.LogAttrs(ctx, slog.LevelInfo, "passkey assertion refused", slog.String("user_id", u.ID), slog.String("err", err.Error()))
			return mfa.ErrBadCode
		}
		return h.usedPasskey(ctx, u.ID, *cred, parsed.Response.AuthenticatorData.Counter)
	}
}

// usedPasskey records a passkey's use (mfa.Factors.UsedPasskey). A counter
// that went backwards refuses the sign-in like a bad signature, and is
// logged at WARN: the user's passkey may have been copied, which the
// operator should hear of (the user sees the ordinary refusal and may
// remove the passkey on the account page).
func (h *Handler) usedPasskey(ctx context.Context, userID string, cred webauthn.Credential, counter uint32) error {
	var cloned *mfa.ClonedPasskeyError
	err := h.cfg.Factors.UsedPasskey(ctx, userID, cred, counter)
	if !errors.As(err, &cloned) {
		return err
	}
	if cloned.Stored == counter {
		// The latest assertion again: a double submit or a replay raced
		// past the page's single use, not evidence of a copy.
		h.log.LogAttrs(ctx, slog.LevelInfo, "passkey assertion refused: its counter was already used", slog.String("user_id", userID))
	} else {
		h.log.LogAttrs(ctx, slog.LevelWarn, "passkey refused: its signature counter went backwards, it may have been copied",
			slog.String("user_id", userID), slog.Uint64("counter", uint64(counter)), slog.Uint64("stored_counter", uint64(cloned.Stored)))
	}
	return mfa.ErrBadCode
}

// passkeyRegistration makes the options of adding a passkey for user.
func (h *Handler) passkeyRegistration(ctx context.Context, u users.User) (json.RawMessage, []mfa.Passkey, error) {
	w, list, err := h.waUser(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	// Discoverable (resident) and verifying its user when it can: such a
	// passkey also signs in without a password (passkeylogin.go). A key
	// that cannot keep a passkey is refused by the browser; one added
	// before this rule stays a second factor. credProps records what the
	// authenticator made (Credential.Extensions.RK).
	opts, sd, err := h.passkeys.BeginRegistration(w,
		webauthn.WithExclusions(webauthn.Credentials(w.creds).CredentialDescriptors()),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{ResidentKey: protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(), UserVerification: protocol.VerificationPreferred}),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
	if err != nil {
		return nil, nil, fmt.Errorf("passkey options: %w", err)
	}
	data, err := marshalCeremony(sd, opts)
	return data, list, err
}

// addPasskey is POST /account/passkey: the browser's new credential,
// checked against the challenge of the page, stored under its name.
func (h *Handler) addPasskey(c echo.Context) error {
	tx, user, ok, err := h.accountUser(c, kindPasskeyReg)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	r := c.Request()
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "Passkey"
	}
	if utf8.RuneCountInString(name) > 64 {
		name = string([]rune(name)[:64])
	}
	refused := func(why string) error {
		return h.errorPage(c, http.StatusBadRequest, "The passkey was not added", why+" Open your account page and try again.", "")
	}
	var cm ceremony
	if json.Unmarshal(tx.Data, &cm) != nil {
		return refused("The page did not carry its challenge.")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostFormValue("credential")))
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
		return refused("This page was already used.")
	}
	if err := h.cfg.Factors.AddPasskey(ctx, user.ID, name, *cred); errors.Is(err, mfa.ErrTooManyPasskeys) {
		return refused(fmt.Sprintf("You have %d passkeys already.", mfa.MaxPasskeys))
	} else if err != nil {
		return h.serverError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, h.path+"/account")
}

// removePasskey is POST /account/passkey/remove.
func (h *Handler) removePasskey(c echo.Context) error {
	tx, user, ok, err := h.accountUser(c, kindPasskeyDel)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	id, err := base64.RawURLEncoding.DecodeString(c.Request().PostFormValue("passkey"))
	if err != nil || len(id) == 0 || len(id) > 1024 {
		return h.errorPage(c, http.StatusBadRequest, "The passkey was not removed", "The form did not name a passkey. Open your account page and try again.", "")
	}
	if done, err := h.sess.FinishTransaction(ctx, tx.ID); err != nil {
		return h.serverError(c, err)
	} else if !done {
		return h.errorPage(c, http.StatusBadRequest, "This page has expired", "This page was already used. Open your account page again.", "")
	}
	k, err := h.keep(ctx, user) // not the last factor of a user who must have one (enrol.go)
	if err != nil {
		return h.serverError(c, err)
	}
	if _, err := h.cfg.Factors.RemovePasskey(ctx, user.ID, id, k); errors.Is(err, mfa.ErrLastFactor) {
		return h.lastFactor(c)
	} else if err != nil {
		return h.serverError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, h.path+"/account")
}

func (h *Handler) serveWebAuthnJS(c echo.Context) error {
	b, err := embedded.ReadFile("static/webauthn.js")
	if err != nil {
		return h.serverError(c, err)
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", b)
}
