package authority

import (
	"time"

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
