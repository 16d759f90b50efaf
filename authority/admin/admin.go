// Package admin is Signet's admin API: clients, users, consents, keys, the
// audit trail and backups over HTTP, for bearer tokens of the admin audience
// with the admin scope. authority.Server mounts it through Config.Admin
// (Routes), so that it uses the server's one bearer check, error writer and
// audit log without authority importing it.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/mfa"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

const (
	maxAdminBody  = 64 << 10
	actorKey      = "signet.actor"
	bearerRealm   = `Bearer realm="signet-admin"`
	defaultAudits = 100
	maxAudits     = 1000
)

// api is the admin API of one authority server.
type api struct{ srv *authority.Server }

// Routes mounts the admin API of srv on e; it is the value of
// authority.Config.Admin.
func Routes(srv *authority.Server, e *echo.Echo) { (&api{srv}).adminRoutes(e) }

func (s *api) adminRoutes(e *echo.Echo) {
	// Middleware per route, not per group: an echo group's middleware
	// turns a wrong method into 404 instead of 405.
	auth := s.requireAdmin
	e.GET("/admin/keys", s.adminListKeys, auth)
	e.POST("/admin/keys/rotate", s.adminRotateKeys, auth)
	e.POST("/admin/keys/:kid/revoke", s.adminRevokeKey, auth)
	e.GET("/admin/clients", s.adminListClients, auth)
	e.POST("/admin/clients", s.adminCreateClient, auth)
	e.GET("/admin/clients/:id", s.adminGetClient, auth)
	e.PATCH("/admin/clients/:id", s.adminUpdateClient, auth)
	e.DELETE("/admin/clients/:id", s.adminDeleteClient, auth)
	e.POST("/admin/clients/:id/secret", s.adminRotateSecret, auth)
	e.GET("/admin/audit", s.adminAudit, auth)
	e.GET("/admin/backup", s.adminBackup, auth)
	e.GET("/admin/users", s.adminListUsers, auth)
	e.POST("/admin/users", s.adminCreateUser, auth)
	e.GET("/admin/users/:id", s.adminGetUser, auth)
	e.PATCH("/admin/users/:id", s.adminUpdateUser, auth)
	e.DELETE("/admin/users/:id", s.adminDeleteUser, auth)
	e.POST("/admin/users/:id/password", s.adminSetPassword, auth)
	e.POST("/admin/users/:id/logout", s.adminLogout, auth)
	e.GET("/admin/users/:id/consents", s.adminListConsents, auth)
	e.DELETE("/admin/users/:id/consents/:client", s.adminWithdrawConsent, auth)
	e.GET("/admin/users/:id/factors", s.adminGetFactors, auth)
	e.DELETE("/admin/users/:id/factors", s.adminResetFactors, auth)
}

// requireAdmin authenticates the bearer token, checks the scope, and
// refuses state-changing requests that are not JSON: a cross-site form can
// send text/plain or form bodies without a preflight, never JSON.
func (s *api) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		who, err := s.verifyAdmin(r)
		if err != nil {
			var oe *authority.Error
			if errors.As(err, &oe) && oe.Status == http.StatusForbidden {
				s.record(c, authority.AuditEvent{Actor: who.Name, Client: who.Client, Action: "admin.access", Target: r.Method + " " + r.URL.Path, Outcome: "denied", Detail: oe.Description})
			}
			return err
		}
		c.Set(actorKey, who)
		if r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut {
			mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
			if err != nil || mt != echo.MIMEApplicationJSON {
				return &authority.Error{Code: "invalid_request", Description: "Content-Type must be application/json", Status: http.StatusUnsupportedMediaType}
			}
		}
		return next(c)
	}
}

// verifyAdmin is the shared bearer check (Server.VerifyBearer) for the admin
// audience, plus the admin scope: the token must carry it and its client
// must still be allowed it. A user's token (sub is not its client_id)
// also needs the user, as stored now, to hold the admin role
// (users.PermitScopes): a role taken away ends the user's admin access at
// once, not when the token expires. It returns who acts (the user, or the
// client for its own token) also when it refuses for lack of scope.
func (s *api) verifyAdmin(r *http.Request) (audit.Actor, error) {
	at, err := s.srv.VerifyBearer(r, authority.AdminAudience, bearerRealm)
	if err != nil {
		return audit.Actor{}, err
	}
	gone := authority.BearerError("invalid_token", "the token's client or user no longer exists", http.StatusUnauthorized, bearerRealm+`, error="invalid_token"`)
	ent, err := s.srv.Clients().Lookup(r.Context(), at.ClientID)
	if err != nil { // deleted since verifyBearer looked: refuse as it would
		return audit.Actor{}, gone
	}
	who := audit.Actor{Name: at.ClientID}
	allowed := slices.Contains(authority.SplitScope(at.Scope), authority.AdminScope) && slices.Contains(ent.Record.Scopes, authority.AdminScope)
	if at.Sub != at.ClientID {
		who = audit.Actor{Name: audit.UserActor(at.Sub), Client: at.ClientID}
	}
	if allowed && at.Sub != at.ClientID {
		u, err := s.srv.Users().Get(r.Context(), at.Sub)
		if errors.Is(err, storage.ErrNotFound) {
			return audit.Actor{}, gone
		}
		if err != nil {
			return audit.Actor{}, authority.ServerError(fmt.Errorf("admin token user: %w", err))
		}
		if _, refused := users.PermitScopes(&u, []string{authority.AdminScope}); refused != "" {
			allowed = false
		}
	}
	if !allowed {
		return who, authority.BearerError("insufficient_scope", "token lacks scope "+authority.AdminScope, http.StatusForbidden,
			bearerRealm+`, error="insufficient_scope", scope="`+authority.AdminScope+`"`)
	}
	return who, nil
}

// actor is who acts in an admin request, as the audit trail names it.
func actor(c echo.Context) string { return actorOf(c).Name }

func actorOf(c echo.Context) audit.Actor {
	a, _ := c.Get(actorKey).(audit.Actor)
	return a
}

// record writes an audit event (Server.Record); an admin request's event
// names the client a user acted through.
func (s *api) record(c echo.Context, ev authority.AuditEvent) {
	if a := actorOf(c); ev.Client == "" && ev.Actor == a.Name {
		ev.Client = a.Client
	}
	s.srv.Record(c, ev)
}

// logout ends every session of the user id for reason.
func (s *api) logout(ctx context.Context, id, reason string) (int, error) {
	n, _, err := s.srv.LogoutCutoff(ctx, id, reason)
	return n, err
}

// audited runs fn and records its outcome.
func (s *api) audited(c echo.Context, action, target string, fn func() (detail string, err error)) error {
	detail, err := fn()
	ev := authority.AuditEvent{Actor: actor(c), Action: action, Target: target, Outcome: "ok", Detail: detail}
	if err != nil {
		ev.Outcome = "error"
		ev.Detail = auditError(err)
	}
	s.record(c, ev)
	return err
}

// auditError is what the audit trail says about a failed action: the
// client-facing text of a refusal, or only "internal error".
func auditError(err error) string {
	var oe *authority.Error
	if errors.As(err, &oe) {
		return oe.Code + ": " + oe.Description
	}
	return "internal error"
}

// adminError maps errors of the registry and the key admin.
func adminError(err error) error {
	var cve *clients.ValidationError
	var uve *users.ValidationError
	var look *users.LookAlikeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cve), errors.As(err, &uve):
		return &authority.Error{Code: "invalid_request", Description: validationText(err), Status: http.StatusBadRequest, Err: err}
	case errors.Is(err, storage.ErrNotFound):
		return &authority.Error{Code: "not_found", Description: "no such object", Status: http.StatusNotFound, Err: err}
	case errors.Is(err, clients.ErrExists):
		return &authority.Error{Code: "conflict", Description: "client id already exists", Status: http.StatusConflict, Err: err}
	case errors.Is(err, users.ErrExists):
		return &authority.Error{Code: "conflict", Description: "username already exists", Status: http.StatusConflict, Err: err}
	case errors.As(err, &look):
		return &authority.Error{Code: "conflict", Description: "username looks like an existing username (confusable characters)", Status: http.StatusConflict, Err: err}
	case errors.Is(err, authority.ErrKeyConflict):
		return &authority.Error{Code: "conflict", Description: err.Error(), Status: http.StatusConflict, Err: err}
	}
	return authority.ServerError(err)
}

// validationText joins the field problems in err (a tree of wrapped and
// joined errors) into one line for the client.
func validationText(err error) string {
	var parts []string
	var walk func(error)
	walk = func(e error) {
		switch ve := e.(type) {
		case *clients.ValidationError:
			parts = append(parts, ve.Field+": "+ve.Problem)
			return
		case *users.ValidationError:
			parts = append(parts, ve.Field+": "+ve.Problem)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return "invalid client: " + strings.Join(parts, "; ")
}

// decodeJSON reads a bounded JSON body into v, refusing unknown fields and
// trailing data. An empty body leaves v alone.
func decodeJSON(c echo.Context, v any) error {
	r := c.Request()
	if r.ContentLength > maxAdminBody {
		return &authority.Error{Code: "invalid_request", Description: "request body is larger than 64 KiB", Status: http.StatusRequestEntityTooLarge}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return authority.InvalidRequest("could not read the request body")
	}
	if len(b) > maxAdminBody {
		return &authority.Error{Code: "invalid_request", Description: "request body is larger than 64 KiB", Status: http.StatusRequestEntityTooLarge}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return authority.InvalidRequest("invalid JSON body: " + err.Error())
	}
	if dec.More() {
		return authority.InvalidRequest("invalid JSON body: trailing data")
	}
	return nil
}

func (s *api) keyAdmin() (authority.KeyAdmin, error) {
	if s.srv.KeyAdmin() == nil {
		return nil, &authority.Error{Code: "not_implemented", Description: "key administration is not configured", Status: http.StatusNotImplemented}
	}
	return s.srv.KeyAdmin(), nil
}

type keysResponse struct {
	Keys []authority.KeyInfo `json:"keys"`
}

func (s *api) adminListKeys(c echo.Context) error {
	ka, err := s.keyAdmin()
	if err != nil {
		return err
	}
	infos, err := ka.Keys(c.Request().Context())
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, keysResponse{infos})
}

func (s *api) adminRotateKeys(c echo.Context) error {
	ka, err := s.keyAdmin()
	if err != nil {
		return err
	}
	force := false
	if v := c.QueryParam("force"); v != "" {
		if force, err = strconv.ParseBool(v); err != nil {
			return authority.InvalidRequest("force must be true or false")
		}
	}
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	ctx := s.actorContext(c)
	var after []authority.KeyInfo
	err = s.auditedFailure(c, "keys.rotate", "", func() error {
		if err := ka.Rotate(ctx, force); err != nil {
			return adminError(err)
		}
		after, err = ka.Keys(ctx)
		return adminError(err)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, keysResponse{after})
}

func (s *api) adminRevokeKey(c echo.Context) error {
	ka, err := s.keyAdmin()
	if err != nil {
		return err
	}
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	ctx := s.actorContext(c)
	kid := c.Param("kid")
	var after []authority.KeyInfo
	err = s.auditedFailure(c, "keys.revoke", kid, func() error {
		if err := ka.Revoke(ctx, kid); err != nil {
			return adminError(err)
		}
		after, err = ka.Keys(ctx)
		return adminError(err)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, keysResponse{after})
}

type clientsResponse struct {
	Clients []clients.Client `json:"clients"`
}

// ClientWithSecret is a client together with its new secret: the answer
// to a create or a secret rotation, and the only time the secret is shown.
type ClientWithSecret struct {
	clients.Client
	ClientSecret string `json:"client_secret"`
}

func (s *api) adminListClients(c echo.Context) error {
	list, err := s.srv.Clients().List(c.Request().Context())
	if err != nil {
		return adminError(err)
	}
	if list == nil {
		list = []clients.Client{}
	}
	return c.JSON(http.StatusOK, clientsResponse{list})
}

func (s *api) adminCreateClient(c echo.Context) error {
	var spec clients.Client
	if err := decodeJSON(c, &spec); err != nil {
		return err
	}
	var out ClientWithSecret
	err := s.audited(c, "clients.create", spec.ID, func() (string, error) {
		cl, secret, err := s.srv.Clients().Create(c.Request().Context(), spec)
		out = ClientWithSecret{cl, secret}
		return "", adminError(err)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

func (s *api) adminGetClient(c echo.Context) error {
	cl, err := s.srv.Clients().Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, cl)
}

func (s *api) adminUpdateClient(c echo.Context) error {
	var p clients.Patch
	if err := decodeJSON(c, &p); err != nil {
		return err
	}
	id := c.Param("id")
	var out clients.Client
	err := s.audited(c, "clients.update", id, func() (string, error) {
		cl, err := s.srv.Clients().Update(c.Request().Context(), id, p)
		out = cl
		return dynamicNote(cl) + patchedFields(p), adminError(err)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// dynamicNote marks, in the audit trail, a change to a client that
// registered itself (package registration).
func dynamicNote(cl clients.Client) string {
	if cl.Dynamic {
		return "dynamic client; "
	}
	return ""
}

// patchedFields names the fields a patch sets, for the audit trail.
func patchedFields(p any) string {
	b, _ := json.Marshal(p)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	var names []string
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return "fields=" + strings.Join(names, ",")
}

func (s *api) adminDeleteClient(c echo.Context) error {
	id := c.Param("id")
	err := s.audited(c, "clients.delete", id, func() (string, error) {
		cl, _ := s.srv.Clients().Get(c.Request().Context(), id)
		return strings.TrimSuffix(dynamicNote(cl), "; "), adminError(s.srv.Clients().Delete(c.Request().Context(), id))
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// SecretRotation is the body of POST /admin/clients/{id}/secret.
type SecretRotation struct {
	// KeepPrevious is how long the old secret keeps working (default 0).
	KeepPrevious clients.Duration `json:"keep_previous"`
}

func (s *api) adminRotateSecret(c echo.Context) error {
	var req SecretRotation
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	id := c.Param("id")
	var out ClientWithSecret
	err := s.audited(c, "clients.rotate_secret", id, func() (string, error) {
		cl, secret, err := s.srv.Clients().RotateSecret(c.Request().Context(), id, time.Duration(req.KeepPrevious))
		out = ClientWithSecret{cl, secret}
		return "keep_previous=" + time.Duration(req.KeepPrevious).String(), adminError(err)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

type usersResponse struct {
	Users []users.User `json:"users"`
}

// userError is adminError with the validation text about a user.
func userError(err error) error {
	e := adminError(err)
	var oe *authority.Error
	if errors.As(e, &oe) && oe.Code == "invalid_request" {
		oe.Description = "invalid user: " + strings.TrimPrefix(oe.Description, "invalid client: ")
	}
	return e
}

func (s *api) adminListUsers(c echo.Context) error {
	list, err := s.srv.Users().List(c.Request().Context())
	if err != nil {
		return adminError(err)
	}
	if list == nil {
		list = []users.User{}
	}
	return c.JSON(http.StatusOK, usersResponse{list})
}

func (s *api) adminCreateUser(c echo.Context) error {
	var nu users.NewUser
	if err := decodeJSON(c, &nu); err != nil {
		return err
	}
	var out users.User
	err := s.audited(c, "users.create", nu.Username, func() (string, error) {
		u, err := s.srv.Users().Create(c.Request().Context(), nu)
		out = u
		return "id=" + u.ID, userError(err)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

func (s *api) adminGetUser(c echo.Context) error {
	u, err := s.srv.Users().Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, u)
}

func (s *api) adminUpdateUser(c echo.Context) error {
	var p users.Patch
	if err := decodeJSON(c, &p); err != nil {
		return err
	}
	id := c.Param("id")
	ctx := c.Request().Context()
	var out users.User
	err := s.audited(c, "users.update", id, func() (string, error) {
		u, disabled, err := s.srv.Users().Update(ctx, id, p)
		if err != nil {
			return "", userError(err)
		}
		out = u
		detail := patchedFields(p)
		if p.RequireSecondFactor != nil { // the policy change itself, not only its field name
			detail += fmt.Sprintf(" require_second_factor=%t", *p.RequireSecondFactor)
		}
		if disabled {
			n, err := s.logout(ctx, id, authority.ReasonUserGone)
			if err != nil {
				return "", authority.ServerError(err)
			}
			detail += fmt.Sprintf(" disabled: families_revoked=%d", n)
		}
		return detail, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *api) adminDeleteUser(c echo.Context) error {
	id := c.Param("id")
	ctx := c.Request().Context()
	err := s.audited(c, "users.delete", id, func() (string, error) {
		if err := s.srv.Users().Delete(ctx, id); err != nil {
			return "", adminError(err)
		}
		if err := mfa.Forget(ctx, s.srv.Store(), id); err != nil { // the sealed TOTP secret goes with the user
			return "", authority.ServerError(err)
		}
		n, err := s.logout(ctx, id, authority.ReasonUserGone)
		if err != nil {
			return "", authority.ServerError(err)
		}
		return fmt.Sprintf("families_revoked=%d", n), nil
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// adminSetPassword sets a new password and ends the user's sessions: a
// password is reset because it may be known to someone else.
func (s *api) adminSetPassword(c echo.Context) error {
	var pc users.PasswordChange
	if err := decodeJSON(c, &pc); err != nil {
		return err
	}
	id := c.Param("id")
	ctx := c.Request().Context()
	err := s.audited(c, "users.set_password", id, func() (string, error) {
		if err := s.srv.Users().SetPassword(ctx, id, pc); err != nil {
			return "", userError(err)
		}
		n, err := s.logout(ctx, id, authority.ReasonUserChanged)
		if err != nil {
			return "", authority.ServerError(err)
		}
		return fmt.Sprintf("families_revoked=%d", n), nil
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// LogoutResult is the answer to POST /admin/users/{id}/logout.
type LogoutResult struct {
	FamiliesRevoked int   `json:"families_revoked"`
	Cutoff          int64 `json:"cutoff"`
}

func (s *api) adminLogout(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	id := c.Param("id")
	ctx := c.Request().Context()
	var out LogoutResult
	err := s.audited(c, "users.logout", id, func() (string, error) {
		if _, err := s.srv.Users().Get(ctx, id); err != nil {
			return "", adminError(err)
		}
		n, cutoff, err := s.srv.LogoutCutoff(ctx, id, authority.ReasonLogout)
		if err != nil {
			return "", authority.ServerError(err)
		}
		out = LogoutResult{FamiliesRevoked: n, Cutoff: cutoff}
		return fmt.Sprintf("families_revoked=%d", n), nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
