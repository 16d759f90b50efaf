// Package users is Signet's user registry: the resource owners of the
// password and authorization_code grants, their profile fields, and their
// password hashes (argon2id, bcrypt on import) in storage.
package users

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/storage"
)

// Buckets for users: usersBucket holds one JSON Record per user id;
// usernamesBucket maps the username's key (NameKey, RFC 8265
// UsernameCaseMapped) to the id, which keeps usernames unique regardless
// of case and width.
const (
	usersBucket     = "users"
	usernamesBucket = "usernames"
)

// ErrExists is returned when the username is taken.
var ErrExists = errors.New("users: username already exists")

// LookAlikeError refuses a username whose skeleton equals another user's
// (username.go): "alıce" beside "alice".
type LookAlikeError struct {
	Username, Existing string
}

func (e *LookAlikeError) Error() string {
	return "users: username " + e.Username + " looks like the existing username " + e.Existing
}

// ValidationError names the user field that is wrong and why. Problem is
// in the RFC 6749 error_description charset: the admin API sends it.
type ValidationError struct {
	Field   string
	Problem string
}

func (e *ValidationError) Error() string {
	return "invalid user: " + e.Field + ": " + e.Problem
}

// User is a resource owner for the password grant, as the admin API and
// the CLI show it: never with its password hash.
type User struct {
	// ID is generated, stable, and the sub of the user's tokens.
	ID       string `json:"id"`
	Username string `json:"username"`
	Disabled bool   `json:"disabled"`
	// Email goes into access tokens whose scope includes "email".
	Email string `json:"email,omitempty"`
	// Roles go into every access token of the user when present.
	Roles []string `json:"roles,omitempty"`
	// Claims are extra profile claims (a string or an array of strings
	// each) that go into access tokens whose scope includes "profile".
	Claims            map[string]json.RawMessage `json:"claims,omitempty"`
	PasswordChangedAt time.Time                  `json:"password_changed_at,omitzero"`
	CreatedAt         time.Time                  `json:"created_at,omitzero"`
	UpdatedAt         time.Time                  `json:"updated_at,omitzero"`
	// Name is the full name (OIDC claim name, scope profile);
	// EmailVerified says the operator checked Email (scope email).
	Name          string `json:"name,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	// RequireSecondFactor: an operator requires a second factor of this
	// user (docs/login.md, Requiring a second factor), since
	// RequireSecondFactorSince, which the registry sets: the grace period
	// counts from there.
	RequireSecondFactor      bool      `json:"require_second_factor,omitempty"`
	RequireSecondFactorSince time.Time `json:"require_second_factor_since,omitzero"`
}

// NewUser is the body of POST /admin/users: a user plus either a password
// (hashed with argon2id) or an existing hash to import (argon2id PHC string
// or bcrypt).
type NewUser struct {
	Username      string                     `json:"username"`
	Password      string                     `json:"password,omitempty"`
	PasswordHash  string                     `json:"password_hash,omitempty"`
	Disabled      bool                       `json:"disabled,omitempty"`
	Email         string                     `json:"email,omitempty"`
	Roles         []string                   `json:"roles,omitempty"`
	Claims        map[string]json.RawMessage `json:"claims,omitempty"`
	Name          string                     `json:"name,omitempty"`
	EmailVerified bool                       `json:"email_verified,omitempty"`
	// RequireSecondFactor: an operator requires a second factor of the user.
	RequireSecondFactor bool `json:"require_second_factor,omitempty"`
}

// Patch changes the fields that are set.
type Patch struct {
	Username      *string                     `json:"username,omitempty"`
	Disabled      *bool                       `json:"disabled,omitempty"`
	Email         *string                     `json:"email,omitempty"`
	Roles         *[]string                   `json:"roles,omitempty"`
	Claims        *map[string]json.RawMessage `json:"claims,omitempty"`
	Name          *string                     `json:"name,omitempty"`
	EmailVerified *bool                       `json:"email_verified,omitempty"`
	// RequireSecondFactor sets or clears the operator's requirement.
	RequireSecondFactor *bool `json:"require_second_factor,omitempty"`
}

// PasswordChange is the body of POST /admin/users/{id}/password.
type PasswordChange struct {
	Password     string `json:"password,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
}

// Record is what is stored: the user plus the password hash.
type Record struct {
	User
	PasswordHash string `json:"password_hash"`
}

// Registry is the user registry over a store. It is what the admin API and
// the offline CLI use; logins read it directly (no cache: a login costs an
// argon2id hash anyway).
type Registry struct {
	store  storage.Store
	now    func() time.Time
	params PasswordParams
}

// New returns the registry over store; params are the argon2id
// parameters of new hashes (zero: defaults), nil now means time.Now.
func New(store storage.Store, params PasswordParams, now func() time.Time) *Registry {
	params.ApplyDefaults()
	if now == nil {
		now = time.Now
	}
	return &Registry{store: store, now: now, params: params}
}

func newUserID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // UUID version 4
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// passwordHash turns a password or an imported hash into what is stored.
func (u *Registry) passwordHash(password, hash string) (string, error) {
	if err := checkPassword(password, hash); err != nil {
		return "", err
	}
	if hash != "" {
		return hash, nil
	}
	return HashPassword(password, u.params), nil
}

// checkPassword validates a new password or an imported hash without the
// cost of hashing it.
func checkPassword(password, hash string) error {
	switch {
	case password != "" && hash != "":
		return &ValidationError{Field: "password", Problem: "give password or password_hash, not both"}
	case hash != "":
		if err := checkHashFormat(hash); err != nil {
			return &ValidationError{Field: "password_hash", Problem: "must be an argon2id PHC string or a bcrypt hash"}
		}
		return nil
	case password == "":
		return &ValidationError{Field: "password", Problem: "required"}
	case len(password) > maxPasswordLen:
		return &ValidationError{Field: "password", Problem: fmt.Sprintf("longer than %d bytes", maxPasswordLen)}
	case utf8.RuneCountInString(password) < 8:
		return &ValidationError{Field: "password", Problem: "must be at least 8 characters"}
	}
	return nil
}

// Create validates and stores a new user.
func (u *Registry) Create(ctx context.Context, nu NewUser) (User, error) {
	now := u.now().UTC()
	usr := User{ID: newUserID(), Username: nu.Username, Disabled: nu.Disabled, Email: nu.Email, Roles: nu.Roles, Claims: nu.Claims,
		CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now, Name: nu.Name, EmailVerified: nu.EmailVerified}
	if nu.RequireSecondFactor {
		usr.RequireSecondFactor, usr.RequireSecondFactorSince = true, now
	}
	// Validate everything before hashing: a refusal costs no argon2id run.
	if err := errors.Join(validateUser(&usr, true), checkPassword(nu.Password, nu.PasswordHash)); err != nil {
		return User{}, err
	}
	hash, err := u.passwordHash(nu.Password, nu.PasswordHash)
	if err != nil {
		return User{}, err
	}
	val, err := json.Marshal(Record{User: usr, PasswordHash: hash})
	if err != nil {
		return User{}, err
	}
	err = u.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(usernamesBucket, NameKey(usr.Username)); err == nil {
			return ErrExists
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := claimSkeletons(tx, usr.ID, usr.Username); err != nil {
			return err
		}
		if err := tx.Put(usernamesBucket, NameKey(usr.Username), []byte(usr.ID)); err != nil {
			return err
		}
		return tx.Put(usersBucket, usr.ID, val)
	})
	if err != nil {
		return User{}, fmt.Errorf("create user %s: %w", usr.Username, err)
	}
	return usr, nil
}

// Get returns the user with id, or an error wrapping storage.ErrNotFound.
func (u *Registry) Get(ctx context.Context, id string) (User, error) {
	var rec Record
	err := u.store.View(ctx, func(tx storage.Tx) error {
		var err error
		rec, err = Read(tx, id)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return rec.User, nil
}

// Lookup finds a user id by username (case-insensitive), or an error wrapping storage.ErrNotFound.
func (u *Registry) Lookup(ctx context.Context, username string) (string, error) {
	var id string
	err := u.store.View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(usernamesBucket, NameKey(username))
		id = string(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("username: %w", err)
	}
	return id, nil
}

// Read reads the user with id inside tx, for callers that need the user
// and other records in one transaction; an unknown id is storage.ErrNotFound.
func Read(tx storage.Tx, id string) (Record, error) {
	var rec Record
	b, err := tx.Get(usersBucket, id)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("decode user %s: %w", id, err)
	}
	return rec, nil
}

// Find reads a user by username (case-insensitive) inside tx; an unknown
// or impossible username is storage.ErrNotFound.
func Find(tx storage.Tx, username string) (Record, error) {
	if username == "" || len(username) > 256 {
		return Record{}, storage.ErrNotFound
	}
	id, err := tx.Get(usernamesBucket, NameKey(username))
	if err != nil {
		return Record{}, err
	}
	return Read(tx, string(id))
}

// List returns every user in id order.
func (u *Registry) List(ctx context.Context) ([]User, error) {
	var out []User
	err := u.store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(usersBucket, "", func(key string, b []byte) error {
			var rec Record
			if err := json.Unmarshal(b, &rec); err != nil {
				return fmt.Errorf("decode user %s: %w", key, err)
			}
			out = append(out, rec.User)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// Update applies p. It reports whether the user went from enabled to
// disabled (the caller then logs the user out).
func (u *Registry) Update(ctx context.Context, id string, p Patch) (User, bool, error) {
	var out User
	var disabled bool
	err := u.modify(ctx, id, func(tx storage.Tx, rec *Record) error {
		oldKey, oldName := NameKey(rec.Username), rec.Username
		was := rec.Disabled
		setIf(&rec.Username, p.Username)
		setIf(&rec.Disabled, p.Disabled)
		setIf(&rec.Email, p.Email)
		setIf(&rec.Roles, p.Roles)
		setIf(&rec.Claims, p.Claims)
		setIf(&rec.Name, p.Name)
		setIf(&rec.EmailVerified, p.EmailVerified)
		// The grace period counts from when the requirement was set; set
		// again, it keeps its start.
		if req := p.RequireSecondFactor; req != nil && *req != rec.RequireSecondFactor {
			rec.RequireSecondFactor, rec.RequireSecondFactorSince = *req, time.Time{}
			if *req {
				rec.RequireSecondFactorSince = u.now().UTC()
			}
		}
		// A username stored before the RFC 8265 profile is checked only
		// when it changes: an administrator can still disable that user.
		if err := validateUser(&rec.User, p.Username != nil); err != nil {
			return err
		}
		if k := NameKey(rec.Username); k != oldKey {
			if _, err := tx.Get(usernamesBucket, k); err == nil {
				return ErrExists
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err := deleteNameKeys(tx, oldName, rec.ID); err != nil {
				return err
			}
		}
		if rec.Username != oldName {
			if err := releaseSkeletons(tx, rec.ID, oldName); err != nil {
				return err
			}
			if err := claimSkeletons(tx, rec.ID, rec.Username); err != nil {
				return err
			}
		}
		if k := NameKey(rec.Username); k != oldKey {
			if err := tx.Put(usernamesBucket, k, []byte(rec.ID)); err != nil {
				return err
			}
		}
		disabled = !was && rec.Disabled
		out = rec.User
		return nil
	})
	return out, disabled, err
}

// SetPassword replaces the user's password (or imports a hash).
func (u *Registry) SetPassword(ctx context.Context, id string, pc PasswordChange) error {
	hash, err := u.passwordHash(pc.Password, pc.PasswordHash)
	if err != nil {
		return err
	}
	return u.modify(ctx, id, func(_ storage.Tx, rec *Record) error {
		rec.PasswordHash = hash
		rec.PasswordChangedAt = u.now().UTC()
		return nil
	})
}

// Rehash replaces the hash old with one of password under the current
// parameters, after a login verified it, if it is still old.
func (u *Registry) Rehash(ctx context.Context, id, old, password string) error {
	hash := HashPassword(password, u.params)
	return u.modify(ctx, id, func(_ storage.Tx, rec *Record) error {
		if rec.PasswordHash == old {
			rec.PasswordHash = hash
		}
		return nil
	})
}

// Delete removes the user; an unknown id is an error wrapping storage.ErrNotFound.
func (u *Registry) Delete(ctx context.Context, id string) error {
	err := u.store.Update(ctx, func(tx storage.Tx) error {
		rec, err := Read(tx, id)
		if err != nil {
			return err
		}
		if err := deleteNameKeys(tx, rec.Username, rec.ID); err != nil {
			return err
		}
		if err := releaseSkeletons(tx, rec.ID, rec.Username); err != nil {
			return err
		}
		return tx.Delete(usersBucket, id)
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	return nil
}

func (u *Registry) modify(ctx context.Context, id string, fn func(storage.Tx, *Record) error) error {
	err := u.store.Update(ctx, func(tx storage.Tx) error {
		rec, err := Read(tx, id)
		if err != nil {
			return err
		}
		if err := fn(tx, &rec); err != nil {
			return err
		}
		rec.UpdatedAt = u.now().UTC()
		val, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Put(usersBucket, id, val)
	})
	if err != nil {
		return fmt.Errorf("update user %s: %w", id, err)
	}
	return nil
}

// deleteNameKeys removes the index entries of name that point to id: its
// key, and the plain lower-cased key a username had before the RFC 8265
// profile.
func deleteNameKeys(tx storage.Tx, name, id string) error {
	for _, k := range []string{NameKey(name), strings.ToLower(name)} {
		v, err := tx.Get(usernamesBucket, k)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && string(v) != id) {
			continue
		}
		if err != nil {
			return err
		}
		if err := tx.Delete(usernamesBucket, k); err != nil {
			return err
		}
	}
	return nil
}

// validateUser checks usr and puts its username in the stored form;
// checkName false leaves a username stored before the profile as it is.
func validateUser(usr *User, checkName bool) error {
	var errs []error
	bad := func(field, problem string) {
		errs = append(errs, &ValidationError{Field: field, Problem: problem})
	}
	if n, ok := normalizeUsername(usr.Username); ok && checkName {
		usr.Username = n
	} else if checkName {
		bad("username", "must be 1 to 128 letters, digits or ASCII punctuation, without spaces, control, format or invisible characters (RFC 8265)")
	}
	if usr.Email != "" && (len(usr.Email) > 254 || !strings.Contains(usr.Email, "@") || strings.ContainsAny(usr.Email, " \t\r\n\"\\")) {
		bad("email", "not an email address")
	}
	if len(usr.Name) > 256 || !utf8.ValidString(usr.Name) || strings.ContainsAny(usr.Name, "\r\n\x00") {
		bad("name", "must be at most 256 characters on one line")
	}
	for _, r := range usr.Roles {
		if !clients.ValidScopeToken(r) { // roles go into tokens: the scope-token charset
			bad("roles", clients.QuoteValue(r)+" must be 1 to 256 printable characters without spaces")
		}
	}
	if hasDup(usr.Roles) {
		bad("roles", "duplicate value")
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(usr.Claims)) { // sorted: a stable error text
		v := usr.Claims[k]
		var s string
		var list []string
		problem := clients.ClaimNameProblem(k, true)
		switch {
		case problem != "":
			bad("claims", problem)
		case k == "" || len(k) > 64:
			bad("claims", "claim names must be 1 to 64 characters")
		case json.Unmarshal(v, &s) != nil && json.Unmarshal(v, &list) != nil:
			bad("claims", clients.QuoteValue(k)+" must be a string or an array of strings")
		}
		size += len(k) + len(v)
	}
	if size > 4096 {
		bad("claims", "more than 4096 bytes")
	}
	return errors.Join(errs...)
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func hasDup(s []string) bool {
	for i := range s {
		if slices.Contains(s[i+1:], s[i]) {
			return true
		}
	}
	return false
}
