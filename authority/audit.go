package authority

import (
	"context"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/storage"
)

// AuditEvent and AuditLog are the audit package's, kept under these names
// for the admin handlers and existing callers.
type (
	AuditEvent = audit.Event
	AuditLog   = audit.Log
)

// NewAuditLog returns the audit log kept in store; nil now means time.Now.
func NewAuditLog(store storage.Store, now func() time.Time) *AuditLog { return audit.New(store, now) }

// Record writes an audit event with the request's ID; a failure is
// logged, not returned, since the action it describes has already
// happened.
func (s *Server) Record(c echo.Context, ev AuditEvent) {
	ev.RequestID = c.Response().Header().Get(echo.HeaderXRequestID)
	if err := s.audit.Record(c.Request().Context(), ev); err != nil {
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, "audit", slog.String("request_id", ev.RequestID), slog.String("action", ev.Action), slog.String("err", err.Error()))
	}
}

// QueryAudit reads the audit trail (GET /admin/audit).
func (s *Server) QueryAudit(ctx context.Context, q audit.Query) (audit.Page, error) {
	return s.audit.Query(ctx, q)
}
