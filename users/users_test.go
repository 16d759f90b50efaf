package users_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

func newRegistry(t *testing.T) (*users.Registry, storage.Store) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "u.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return users.New(st, cheap, func() time.Time { return now }), st
}

// TestRegistry_Usernames: usernames are unique regardless of case, found
// in any case, and a rename or a delete frees the old one.
func TestRegistry_Usernames(t *testing.T) {
	reg, st := newRegistry(t)
	ctx := t.Context()
	alice, err := reg.Create(ctx, users.NewUser{Username: "Alice", Password: "a long password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, users.NewUser{Username: "ALICE", Password: "a long password"}); !errors.Is(err, users.ErrExists) {
		t.Errorf("second ALICE: %v, want ErrExists", err)
	}
	if id, err := reg.Lookup(ctx, "aLiCe"); err != nil || id != alice.ID {
		t.Errorf("Lookup(aLiCe) = %q, %v; want %q", id, err, alice.ID)
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		rec, err := users.Find(tx, "alice")
		if err != nil {
			return err
		}
		if rec.ID != alice.ID || !strings.HasPrefix(rec.PasswordHash, "$argon2id$") {
			t.Errorf("Find = %+v", rec)
		}
		if _, err := users.Find(tx, strings.Repeat("a", 257)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Find(257 bytes) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	name := "alice2"
	if _, _, err := reg.Update(ctx, alice.ID, users.Patch{Username: &name}); err != nil {
		t.Fatal(err)
	}
	bob, err := reg.Create(ctx, users.NewUser{Username: "alice", Password: "a long password"})
	if err != nil {
		t.Fatalf("alice after the rename: %v", err)
	}
	if err := reg.Delete(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Lookup(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Lookup after delete = %v, want ErrNotFound", err)
	}
}

// TestRegistry_Validation: every problem is reported, as a
// users.ValidationError with a text the admin API can send, before any hash
// is computed.
func TestRegistry_Validation(t *testing.T) {
	reg, _ := newRegistry(t)
	_, err := reg.Create(t.Context(), users.NewUser{Username: "a b", Password: "short", Email: "nope",
		Roles: []string{"ok", "ok", `q"uote`}, Claims: map[string]json.RawMessage{"Sub": json.RawMessage(`"x"`), "n": json.RawMessage(`1`)}})
	var ve *users.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	for _, want := range []string{
		"invalid user: username:", "invalid user: email:", "invalid user: password: must be at least 8 characters",
		"roles: 'q%22uote'", "roles: duplicate value", "claims: 'Sub' is reserved", "claims: 'n' must be a string or an array of strings",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
	if _, err := reg.Create(t.Context(), users.NewUser{Username: "x", PasswordHash: "$1$md5"}); !errors.As(err, &ve) || ve.Field != "password_hash" {
		t.Errorf("md5 hash import: %v, want a password_hash ValidationError", err)
	}
}

// TestRegistry_StoredRecord: the stored JSON keeps the field names that
// existing stores hold, and Rehash replaces only the hash it was given.
func TestRegistry_StoredRecord(t *testing.T) {
	reg, st := newRegistry(t)
	ctx := t.Context()
	u, err := reg.Create(ctx, users.NewUser{Username: "carol", Password: "a long password", Email: "c@example.com", Roles: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]json.RawMessage{}
	var id []byte
	err = st.View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get("users", u.ID)
		if err != nil {
			return err
		}
		if id, err = tx.Get("usernames", "carol"); err != nil {
			return err
		}
		id = slices.Clone(id)
		return json.Unmarshal(b, &raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(id) != u.ID {
		t.Errorf("usernames/carol = %q, want %q", id, u.ID)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"created_at", "disabled", "email", "id", "password_changed_at", "password_hash", "roles", "updated_at", "username"}
	if !slices.Equal(keys, want) {
		t.Errorf("stored keys = %v, want %v", keys, want)
	}
	var old string
	_ = json.Unmarshal(raw["password_hash"], &old)
	if err := reg.Rehash(ctx, u.ID, "not the stored hash", "a long password"); err != nil {
		t.Fatal(err)
	}
	_ = st.View(ctx, func(tx storage.Tx) error {
		rec, err := users.Read(tx, u.ID)
		if err != nil || rec.PasswordHash != old {
			t.Errorf("after a Rehash of another hash: %v, hash changed %v", err, rec.PasswordHash != old)
		}
		return nil
	})
	if err := reg.Rehash(ctx, u.ID, old, "a long password"); err != nil {
		t.Fatal(err)
	}
	_ = st.View(ctx, func(tx storage.Tx) error {
		rec, err := users.Read(tx, u.ID)
		if err != nil || rec.PasswordHash == old {
			t.Errorf("after a Rehash of the stored hash: %v, hash unchanged %v", err, rec.PasswordHash == old)
		}
		if ok, _ := users.VerifyPassword(rec.PasswordHash, "a long password", cheap); !ok {
			t.Error("the new hash does not verify")
		}
		return nil
	})
}

// TestRegistry_UsernameProfile (issue 16, item 9): beside "alice", a name
// with an invisible or format character is refused, a full-width one is
// the same user, and a look-alike (dotless i, Cyrillic or Greek letters,
// capital I, digit one) is refused; a rename into a look-alike too. Lookup
// and Find take every form of the name to the one user.
func TestRegistry_UsernameProfile(t *testing.T) {
	reg, st := newRegistry(t)
	ctx := t.Context()
	alice, err := reg.Create(ctx, users.NewUser{Username: "alice", Password: "a long password"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want string // "invalid", "exists", "lookalike" or "" (created)
	}{
		{"alice\u200b", "invalid"}, // zero-width space
		{"al\u200dice", "invalid"}, // zero-width joiner
		{"\u202ealice", "invalid"}, // right-to-left override
		{"alice\u00ad", "invalid"}, // soft hyphen
		{"ali\x07ce", "invalid"},   // control
		{"ali ce", "invalid"},      // space
		{"alice\u3000", "invalid"}, // ideographic space
		{"\u2160lice", "invalid"},  // Roman numeral one (compatibility character)
		{"ａlice", "exists"},        // full-width a: the same user
		{"ＡＬＩＣＥ", "exists"},        // full-width capitals
		{"alıce", "lookalike"},     // dotless i
		{"аlice", "lookalike"},     // Cyrillic a
		{"alicе", "lookalike"},     // Cyrillic e
		{"αlice", "lookalike"},     // Greek alpha
		{"ΑLICE", "lookalike"},     // Greek capital alpha
		{"aIice", "lookalike"},     // capital I for l
		{"a1ice", "lookalike"},     // digit one for l
		{"alicé", ""},              // an accented letter is another name
		{"bob", ""},
	} {
		_, err := reg.Create(ctx, users.NewUser{Username: tc.name, Password: "a long password"})
		var ve *users.ValidationError
		var la *users.LookAlikeError
		got := ""
		switch {
		case errors.As(err, &ve):
			got = "invalid"
		case errors.Is(err, users.ErrExists):
			got = "exists"
		case errors.As(err, &la):
			got = "lookalike"
			if la.Existing != "alice" {
				t.Errorf("%q: look-alike of %q, want alice", tc.name, la.Existing)
			}
		case err != nil:
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("create %q = %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
	for _, name := range []string{"alice", "ALICE", "ａlice", "ＡＬＩＣＥ"} {
		if id, err := reg.Lookup(ctx, name); err != nil || id != alice.ID {
			t.Errorf("Lookup(%q) = %q, %v", name, id, err)
		}
		err := st.View(ctx, func(tx storage.Tx) error {
			rec, err := users.Find(tx, name)
			if err == nil && rec.ID != alice.ID {
				t.Errorf("Find(%q) = %s", name, rec.ID)
			}
			return err
		})
		if err != nil {
			t.Errorf("Find(%q): %v", name, err)
		}
	}
	for _, name := range []string{"alıce", "alice\u200b", "аlice"} {
		if id, err := reg.Lookup(ctx, name); err == nil {
			t.Errorf("Lookup(%q) found %s", name, id)
		}
	}
	if users.NameKey("alice\u200b") == users.NameKey("alice") {
		t.Error("an invalid name shares the key of a valid one")
	}
	// Renames: into a look-alike refused, into a free name fine, and the
	// old name then free for a look-alike of it... no: of anything.
	bob, err := reg.Lookup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	look := "аlice"
	if _, _, err := reg.Update(ctx, bob, users.Patch{Username: &look}); !errors.As(err, new(*users.LookAlikeError)) {
		t.Errorf("rename bob to Cyrillic alice: %v", err)
	}
	wide := "ｂｏｂ２"
	if u, _, err := reg.Update(ctx, bob, users.Patch{Username: &wide}); err != nil || u.Username != "bob2" {
		t.Errorf("rename to full-width bob2 = %+v, %v; want stored as bob2", u, err)
	}
	if err := reg.Delete(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, users.NewUser{Username: "alıce", Password: "a long password"}); err != nil {
		t.Errorf("alıce after alice was deleted: %v", err)
	}

	// A store from before the skeleton index: the first create indexes
	// every user, so a look-alike of one of them is still refused.
	err = st.Update(ctx, func(tx storage.Tx) error {
		var keys []string
		if err := tx.Scan("username_skeletons", "", func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete("username_skeletons", k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, users.NewUser{Username: "bοb2", Password: "a long password"}); !errors.As(err, new(*users.LookAlikeError)) {
		t.Errorf("Greek-o bob2 beside bob2 on a store without the index: %v", err)
	}
}

// BenchmarkCreate_BesideUsers is one Create beside 2,000 users (cheap
// password hashing): the look-alike check reads the skeleton index, not
// every user, so it does not grow with the users.
func BenchmarkCreate_BesideUsers(b *testing.B) {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "u.db"), bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	reg := users.New(st, cheap, time.Now)
	for i := range 2000 {
		if _, err := reg.Create(b.Context(), users.NewUser{Username: fmt.Sprintf("user%05d", i), Password: "a long password"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := reg.Create(b.Context(), users.NewUser{Username: fmt.Sprintf("new%07d", i), Password: "a long password"}); err != nil {
			b.Fatal(err)
		}
	}
}
