package authority

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/users"
)

// What the hosted login (package login) needs from the authority: the
// issuer, the clients, the users with their password check and rate
// limits, ID token hints, and a place for its routes.

// Issuer is the issuer URL.
func (s *Server) Issuer() string { return s.cfg.Issuer }

// Register lets another package add routes to the public server (the
// hosted login). Call it before serving.
func (s *Server) Register(fn func(e *echo.Echo)) { fn(s.echo) }

// LoginClient returns a copy of the client for the authorization endpoint,
// or an error wrapping storage.ErrNotFound.
func (s *Server) LoginClient(ctx context.Context, id string) (clients.Client, error) {
	cl, _, err := s.LoginClientInstance(ctx, id)
	return cl, err
}

// LoginClientInstance is LoginClient plus the client's instance id, which
// authorization codes carry so that a client deleted and recreated with
// the same id cannot redeem the old one's codes.
func (s *Server) LoginClientInstance(ctx context.Context, id string) (clients.Client, string, error) {
	if !clients.ValidID(id) && !clients.IsMetadataDocumentID(id) {
		return clients.Client{}, "", fmt.Errorf("client: %w", storage.ErrNotFound)
	}
	ent, err := s.clients.Lookup(ctx, id)
	if err != nil {
		return clients.Client{}, "", err
	}
	return ent.Record.Client, ent.Record.Instance, nil
}

// ErrBadLogin is the one answer for an unknown user, a wrong password and
// a disabled user.
var ErrBadLogin = errors.New("authority: invalid username or password")

// LockedOutError says that logins for this username from this address are
// blocked by the login rate limit until Until.
type LockedOutError struct{ Until time.Time }

func (e *LockedOutError) Error() string { return "authority: too many failed logins" }

// AuthenticateUser checks a username and password exactly as the password
// grant does: the same rate limits, one argon2id run whether or not the
// user exists, rehashing on success. It returns the user, ErrBadLogin, or
// a *LockedOutError.
func (s *Server) AuthenticateUser(ctx context.Context, username, password, ip string) (users.User, error) {
	now := s.cfg.Now()
	if wait := s.login.RetryAfter(users.NameKey(username), ip, now); wait > 0 {
		return users.User{}, &LockedOutError{Until: now.Add(wait)}
	}
	var rec users.Record
	found := false
	err := s.cfg.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		rec, err = users.Find(tx, username)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return users.User{}, fmt.Errorf("login: %w", err)
	}
	hash := s.dummyHash
	if found {
		hash = rec.PasswordHash
	}
	ok, rehash := users.VerifyPassword(hash, password, s.cfg.Password)
	if !found || !ok || rec.Disabled {
		s.login.Fail(users.NameKey(username), ip, now)
		return users.User{}, ErrBadLogin
	}
	s.login.Succeed(users.NameKey(username), ip, now)
	if rehash {
		if err := s.users.Rehash(ctx, rec.ID, rec.PasswordHash, password); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "password rehash", slog.String("user_id", rec.ID), slog.String("err", err.Error()))
		}
	}
	return rec.User, nil
}

// CheckSecondFactor runs check (a second factor of username's sign-in)
// under the password's failed-login limits, sharing their counters: a
// lockout is a *LockedOutError without running check, a false check
// counts as a failed login and is ErrBadLogin.
func (s *Server) CheckSecondFactor(username, ip string, check func() (bool, error)) error {
	now := s.cfg.Now()
	if wait := s.login.RetryAfter(users.NameKey(username), ip, now); wait > 0 {
		return &LockedOutError{Until: now.Add(wait)}
	}
	ok, err := check()
	if err != nil {
		return err
	}
	if !ok {
		s.login.Fail(users.NameKey(username), ip, now)
		return ErrBadLogin
	}
	return nil
}

// CheckPasskeySignIn runs check (a passkey sign-in without a password,
// of username's passkey, or of no known user when username is "") under
// the same limits and counters as the password: a lockout is a
// *LockedOutError without running check, a false check counts as a failed
// login and is ErrBadLogin, and a success makes ip known for username as
// a correct password does.
func (s *Server) CheckPasskeySignIn(username, ip string, check func() (bool, error)) error {
	if err := s.CheckSecondFactor(username, ip, check); err != nil {
		return err
	}
	s.login.Succeed(users.NameKey(username), ip, s.cfg.Now())
	return nil
}

// ActiveUser returns the user if it exists and is enabled, else an error
// wrapping storage.ErrNotFound. An SSO session is only as good as this.
// (Force logout deletes the user's sessions in its own transaction, so a
// session that still exists was made after the last logout.)
func (s *Server) ActiveUser(ctx context.Context, id string) (users.User, error) {
	u, err := s.users.Get(ctx, id)
	if err != nil {
		return users.User{}, err
	}
	if u.Disabled {
		return users.User{}, fmt.Errorf("user %s: %w", id, storage.ErrNotFound)
	}
	return u, nil
}

// endBrowserSessions ends the SSO sessions of sub inside the force-logout
// transaction (revokeSessions), so a logged-out user has to log in again.
func endBrowserSessions(tx storage.Tx, sub string) error {
	_, err := sessions.EndUserTx(tx, sub)
	return err
}

// reasonConsentWithdrawn is the family revocation reason of a withdrawn consent.
const reasonConsentWithdrawn = "consent_withdrawn"

// WithdrawConsent forgets what userID allowed clientID, ends the user's
// outstanding codes for that client and revokes that client's refresh
// token families of the user, in one transaction. It reports whether there
// was a consent and how many families were revoked.
func WithdrawConsent(ctx context.Context, store storage.Store, userID, clientID string, now time.Time) (bool, int, error) {
	var found bool
	var n int
	err := store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if found, err = sessions.WithdrawConsentTx(tx, userID, clientID); err != nil {
			return err
		}
		n = 0
		var ids []string
		err = tx.Scan(userFamiliesBucket, userID+"/", func(k string, _ []byte) error {
			ids = append(ids, strings.TrimPrefix(k, userID+"/"))
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			f, err := getFamily(tx, id)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if f.ClientID != clientID {
				continue
			}
			if live, err := f.live(tx, now); err != nil || !live {
				if err != nil {
					return err
				}
				continue
			}
			n++
			if err := revokeFamily(tx, &f, reasonConsentWithdrawn, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("withdraw consent of %s for %s: %w", userID, clientID, err)
	}
	return found, n, nil
}

// WithdrawConsent is the package's WithdrawConsent on the server's store
// and clock; a withdrawal that revoked families refreshes the revocation
// feed at once.
func (s *Server) WithdrawConsent(ctx context.Context, userID, clientID string) (bool, int, error) {
	found, n, err := WithdrawConsent(ctx, s.cfg.Store, userID, clientID, s.cfg.Now())
	if err == nil {
		s.feed.invalidate()
	}
	return found, n, err
}

// Consents lists what userID allowed each client that still exists, as
// the instance it is now. A consent given to a deleted client, or to an
// earlier instance of its id, allows nothing (sessions.Consent) and is
// not listed: for the user it ended with the client.
func Consents(ctx context.Context, store storage.Store, userID string) ([]sessions.Consent, error) {
	all, err := sessions.Consents(ctx, store, userID)
	if err != nil {
		return nil, err
	}
	reg := clients.New(store, clients.Options{})
	live := all[:0]
	for _, c := range all {
		if clients.IsMetadataDocumentID(c.ClientID) { // not stored: its identity is its URL
			live = append(live, c)
			continue
		}
		ent, err := reg.Lookup(ctx, c.ClientID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list consents: %w", err)
		}
		if ent.Record.Instance == c.ClientInstance {
			live = append(live, c)
		}
	}
	return live, nil
}
