package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/authority"
)

// actorContext is the request context attributed to the admin client, for
// writers that record their own audit event in the transaction of their
// change (the key manager).
func (s *api) actorContext(c echo.Context) context.Context {
	return audit.WithActor(c.Request().Context(), audit.Actor{Name: actor(c), Client: actorOf(c).Client, RequestID: c.Response().Header().Get(echo.HeaderXRequestID)})
}

// auditedFailure runs fn and records only a failure: on success the change
// was recorded in its own transaction by the authority.KeyAdmin.
func (s *api) auditedFailure(c echo.Context, action, target string, fn func() error) error {
	err := fn()
	if err != nil {
		s.record(c, authority.AuditEvent{Actor: actor(c), Action: action, Target: target, Outcome: audit.OutcomeError, Detail: auditError(err)})
	}
	return err
}

// adminAudit is GET /admin/audit: newest first, filtered by since, until
// (RFC 3339) and action (exact, or a prefix such as keys.*), paged by limit
// and the next_cursor of the previous page.
func (s *api) adminAudit(c echo.Context) error {
	q := audit.Query{Limit: defaultAudits, Action: c.QueryParam("action"), Cursor: c.QueryParam("cursor")}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAudits {
			return authority.InvalidRequest(fmt.Sprintf("limit must be an integer from 1 to %d", maxAudits))
		}
		q.Limit = n
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if v := c.QueryParam(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return authority.InvalidRequest(p.name + " must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			*p.dst = t
		}
	}
	page, err := s.srv.QueryAudit(c.Request().Context(), q)
	if errors.Is(err, audit.ErrBadCursor) {
		return authority.InvalidRequest("cursor is not a next_cursor of this endpoint")
	}
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, page)
}

// adminBackup is GET /admin/backup: a consistent snapshot of the store,
// streamed (Config.Backup). Errors before the first byte are JSON errors;
// after it the connection is cut, and the client's check of the trailer
// finds the backup incomplete.
func (s *api) adminBackup(c echo.Context) error {
	if s.srv.Backup() == nil {
		return &authority.Error{Code: "not_implemented", Description: "backup is not configured", Status: http.StatusNotImplemented}
	}
	ctx := c.Request().Context()
	// A large store takes longer than the server's write timeout.
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Time{})
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/octet-stream")
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="signet.backup"`)
	w := &countingWriter{w: c.Response()}
	err := s.srv.Backup()(ctx, w)
	ev := authority.AuditEvent{Actor: actor(c), Action: "store.backup", Outcome: audit.OutcomeOK, Detail: fmt.Sprintf("bytes=%d", w.n)}
	if err != nil {
		ev.Outcome, ev.Detail = audit.OutcomeError, fmt.Sprintf("bytes=%d internal error", w.n)
	}
	s.record(c, ev)
	if err == nil {
		return nil
	}
	if w.n == 0 {
		return authority.ServerError(fmt.Errorf("backup: %w", err))
	}
	s.srv.Logger().LogAttrs(ctx, slog.LevelError, "backup failed while streaming", slog.Int64("bytes", w.n), slog.String("err", err.Error()))
	panic(http.ErrAbortHandler) // cut the connection: the body is incomplete
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}
