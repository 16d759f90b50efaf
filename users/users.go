package authority

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

	"github.com/signet-auth/signet/storage"
)

// Buckets for users: usersBucket holds one JSON userRecord per user id;
// usernamesBucket maps the lower-cased username to the id, which keeps
// usernames unique regardless of case.
const (
	usersBucket     = "users"
	usernamesBucket = "usernames"
)

// ErrUserExists is returned when the username is taken.
var ErrUserExists = errors.New("authority: username already exists")

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
}

// UserPatch changes the fields that are set.
type UserPatch struct {
	Username      *string                     `json:"username,omitempty"`
	Disabled      *bool                       `json:"disabled,omitempty"`
	Email         *string                     `json:"email,omitempty"`
	Roles         *[]string                   `json:"roles,omitempty"`
	Claims        *map[string]json.RawMessage `json:"claims,omitempty"`
	Name          *string                     `json:"name,omitempty"`
	EmailVerified *bool                       `json:"email_verified,omitempty"`
}

// PasswordChange is the body of POST /admin/users/{id}/password.
type PasswordChange struct {
	Password     string `json:"password,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
}

type userRecord struct {
	User
	PasswordHash string `json:"password_hash"`
}

// Users is the user registry over a store. It is what the admin API and
// the offline CLI use; logins read it directly (no cache: a login costs an
// argon2id hash anyway).
type Users struct {
	store  storage.Store
	now    func() time.Time
	params PasswordParams
}

// NewUsers returns the registry over store; params are the argon2id
// parameters of new hashes (zero: defaults), nil now means time.Now.
func NewUsers(store storage.Store, params PasswordParams, now func() time.Time) *Users {
	params.applyDefaults()
	if now == nil {
		now = time.Now
	}
	return &Users{store: store, now: now, params: params}
}

func newUserID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // UUID version 4
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func usernameKey(u string) string { return strings.ToLower(u) }

// passwordHash turns a password or an imported hash into what is stored.
func (u *Users) passwordHash(password, hash string) (string, error) {
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
		return &ValidationError{Field: "password", Problem: "give password or password_hash, not both", User: true}
	case hash != "":
		if err := checkHashFormat(hash); err != nil {
			return &ValidationError{Field: "password_hash", Problem: "must be an argon2id PHC string or a bcrypt hash", User: true}
		}
		return nil
	case password == "":
		return &ValidationError{Field: "password", Problem: "required", User: true}
	case len(password) > maxPasswordLen:
		return &ValidationError{Field: "password", Problem: fmt.Sprintf("longer than %d bytes", maxPasswordLen), User: true}
	case utf8.RuneCountInString(password) < 8:
		return &ValidationError{Field: "password", Problem: "must be at least 8 characters", User: true}
	}
	return nil
}

// Create validates and stores a new user.
func (u *Users) Create(ctx context.Context, nu NewUser) (User, error) {
	now := u.now().UTC()
	usr := User{ID: newUserID(), Username: nu.Username, Disabled: nu.Disabled, Email: nu.Email, Roles: nu.Roles, Claims: nu.Claims,
		CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now, Name: nu.Name, EmailVerified: nu.EmailVerified}
	// Validate everything before hashing: a refusal costs no argon2id run.
	if err := errors.Join(validateUser(&usr), checkPassword(nu.Password, nu.PasswordHash)); err != nil {
		return User{}, err
	}
	hash, err := u.passwordHash(nu.Password, nu.PasswordHash)
	if err != nil {
		return User{}, err
	}
	val, err := json.Marshal(userRecord{User: usr, PasswordHash: hash})
	if err != nil {
		return User{}, err
	}
	err = u.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(usernamesBucket, usernameKey(usr.Username)); err == nil {
			return ErrUserExists
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := tx.Put(usernamesBucket, usernameKey(usr.Username), []byte(usr.ID)); err != nil {
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
func (u *Users) Get(ctx context.Context, id string) (User, error) {
	var rec userRecord
	err := u.store.View(ctx, func(tx storage.Tx) error {
		var err error
		rec, err = getUser(tx, id)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return rec.User, nil
}

// Lookup finds a user id by username (case-insensitive), or an error wrapping storage.ErrNotFound.
func (u *Users) Lookup(ctx context.Context, username string) (string, error) {
	var id string
	err := u.store.View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(usernamesBucket, usernameKey(username))
		id = string(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("username: %w", err)
	}
	return id, nil
}

func getUser(tx storage.Tx, id string) (userRecord, error) {
	var rec userRecord
	b, err := tx.Get(usersBucket, id)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("decode user %s: %w", id, err)
	}
	return rec, nil
}

// findUser reads a user by username inside tx.
func findUser(tx storage.Tx, username string) (userRecord, error) {
	if username == "" || len(username) > 256 {
		return userRecord{}, storage.ErrNotFound
	}
	id, err := tx.Get(usernamesBucket, usernameKey(username))
	if err != nil {
		return userRecord{}, err
	}
	return getUser(tx, string(id))
}

// List returns every user in id order.
func (u *Users) List(ctx context.Context) ([]User, error) {
	var out []User
	err := u.store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(usersBucket, "", func(key string, b []byte) error {
			var rec userRecord
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
func (u *Users) Update(ctx context.Context, id string, p UserPatch) (User, bool, error) {
	var out User
	var disabled bool
	err := u.modify(ctx, id, func(tx storage.Tx, rec *userRecord) error {
		oldKey := usernameKey(rec.Username)
		was := rec.Disabled
		setIf(&rec.Username, p.Username)
		setIf(&rec.Disabled, p.Disabled)
		setIf(&rec.Email, p.Email)
		setIf(&rec.Roles, p.Roles)
		setIf(&rec.Claims, p.Claims)
		setIf(&rec.Name, p.Name)
		setIf(&rec.EmailVerified, p.EmailVerified)
		if err := validateUser(&rec.User); err != nil {
			return err
		}
		if k := usernameKey(rec.Username); k != oldKey {
			if _, err := tx.Get(usernamesBucket, k); err == nil {
				return ErrUserExists
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err := tx.Delete(usernamesBucket, oldKey); err != nil {
				return err
			}
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
func (u *Users) SetPassword(ctx context.Context, id string, pc PasswordChange) error {
	hash, err := u.passwordHash(pc.Password, pc.PasswordHash)
	if err != nil {
		return err
	}
	return u.modify(ctx, id, func(_ storage.Tx, rec *userRecord) error {
		rec.PasswordHash = hash
		rec.PasswordChangedAt = u.now().UTC()
		return nil
	})
}

// rehash replaces the hash after a login verified it, if it is unchanged.
func (u *Users) rehash(ctx context.Context, id, old, password string) error {
	hash := HashPassword(password, u.params)
	return u.modify(ctx, id, func(_ storage.Tx, rec *userRecord) error {
		if rec.PasswordHash == old {
			rec.PasswordHash = hash
		}
		return nil
	})
}

// Delete removes the user; an unknown id is an error wrapping storage.ErrNotFound.
func (u *Users) Delete(ctx context.Context, id string) error {
	err := u.store.Update(ctx, func(tx storage.Tx) error {
		rec, err := getUser(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Delete(usernamesBucket, usernameKey(rec.Username)); err != nil {
			return err
		}
		return tx.Delete(usersBucket, id)
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	return nil
}

func (u *Users) modify(ctx context.Context, id string, fn func(storage.Tx, *userRecord) error) error {
	err := u.store.Update(ctx, func(tx storage.Tx) error {
		rec, err := getUser(tx, id)
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

func validateUser(usr *User) error {
	var errs []error
	bad := func(field, problem string) {
		errs = append(errs, &ValidationError{Field: field, Problem: problem, User: true})
	}
	if !validUsername(usr.Username) {
		bad("username", "must be 1 to 128 printable characters without spaces")
	}
	if usr.Email != "" && (len(usr.Email) > 254 || !strings.Contains(usr.Email, "@") || strings.ContainsAny(usr.Email, " \t\r\n\"\\")) {
		bad("email", "not an email address")
	}
	if len(usr.Name) > 256 || !utf8.ValidString(usr.Name) || strings.ContainsAny(usr.Name, "\r\n\x00") {
		bad("name", "must be at most 256 characters on one line")
	}
	for _, r := range usr.Roles {
		if !validScopeToken(r) {
			bad("roles", quoteValue(r)+" must be 1 to 256 printable characters without spaces")
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
		problem := claimNameProblem(k, true)
		switch {
		case problem != "":
			bad("claims", problem)
		case k == "" || len(k) > 64:
			bad("claims", "claim names must be 1 to 64 characters")
		case json.Unmarshal(v, &s) != nil && json.Unmarshal(v, &list) != nil:
			bad("claims", quoteValue(k)+" must be a string or an array of strings")
		}
		size += len(k) + len(v)
	}
	if size > 4096 {
		bad("claims", "more than 4096 bytes")
	}
	return errors.Join(errs...)
}

func validUsername(s string) bool {
	if s == "" || len(s) > 128 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// userClaims is the JSON (object members, no braces) a user adds to an
// access token with the given scope.
func userClaims(rec *userRecord, scope string) ([]byte, error) {
	m := map[string]any{}
	scopes := splitScope(scope)
	if len(rec.Roles) > 0 {
		m["roles"] = rec.Roles
	}
	if rec.Email != "" && slices.Contains(scopes, "email") {
		m["email"] = rec.Email
		m["email_verified"] = rec.EmailVerified
	}
	if slices.Contains(scopes, "profile") {
		m["preferred_username"] = rec.Username
		if rec.Name != "" {
			m["name"] = rec.Name
		}
		for k, v := range rec.Claims {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return b[1 : len(b)-1], nil
}
