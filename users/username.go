package users

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/signet-auth/signet/storage"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Usernames follow RFC 8265 (PRECIS usernames):
//
//   - the stored, displayed form is UsernameCasePreserved: full-width and
//     half-width characters mapped to their ordinary forms, NFC, and only
//     the IdentifierClass (letters, digits, ASCII printable characters):
//     no spaces, no control, format (zero-width space, joiners, direction
//     marks) or other invisible characters, no symbols or compatibility
//     characters;
//   - the key a username is indexed, looked up and rate limited under is
//     UsernameCaseMapped: the same, lower-cased. "ａlice", "ALICE" and
//     "alice" are one user.
//
// On top of that, a new or renamed username whose skeleton (below) equals
// another user's is refused as a look-alike.

// NameKey is the key a username is indexed, looked up and rate limited
// under: its RFC 8265 UsernameCaseMapped form. Every place that finds a
// user by name (login, the password grant, the admin API, the CLI) goes
// through it. A string the profile refuses cannot be a stored username:
// its key starts with a NUL, which no stored key has, so it finds no one
// while attempts with it are still counted together.
func NameKey(u string) string {
	k, err := precis.UsernameCaseMapped.String(u)
	if err != nil || k == "" {
		return "\x00" + strings.ToLower(u)
	}
	return k
}

// normalizeUsername returns the form of s that is stored and shown
// (UsernameCasePreserved), or false if s is not a username.
func normalizeUsername(s string) (string, bool) {
	if s == "" || len(s) > 128 {
		return "", false
	}
	n, err := precis.UsernameCasePreserved.String(s)
	if err != nil || n == "" || len(n) > 128 {
		return "", false
	}
	return n, true
}

// upperLookAlikes are Greek and Cyrillic capitals read as Latin ones;
// they are mapped before lower-casing, where the likeness would be lost
// (Greek capital eta reads as H, its small letter does not).
var upperLookAlikes = map[rune]rune{
	'Α': 'a', 'Β': 'b', 'Ε': 'e', 'Ζ': 'z', 'Η': 'h', 'Ι': 'I', 'Κ': 'k', 'Μ': 'm', 'Ν': 'n', 'Ο': 'o', 'Ρ': 'p', 'Τ': 't', 'Υ': 'y', 'Χ': 'x', // Greek
	'А': 'a', 'В': 'b', 'Е': 'e', 'К': 'k', 'М': 'm', 'Н': 'h', 'О': 'o', 'Р': 'p', 'С': 'c', 'Т': 't', 'У': 'y', 'Х': 'x', 'І': 'I', 'Ј': 'j', 'Ѕ': 's', // Cyrillic
}

// lowerLookAlikes are small letters and digits read as a Latin letter.
var lowerLookAlikes = map[rune]rune{
	'ı': 'i', 'ȷ': 'j', 'ɡ': 'g', 'ɑ': 'a', // Latin dotless i and j, script g, alpha
	'0': 'o', '1': 'l',
	'α': 'a', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'υ': 'u', 'χ': 'x', 'ϲ': 'c', // Greek
	'а': 'a', 'с': 'c', 'ԁ': 'd', 'е': 'e', 'һ': 'h', 'і': 'i', 'ј': 'j', 'ӏ': 'l', 'о': 'o', 'р': 'p', 'ԛ': 'q', 'ѕ': 's', 'ԝ': 'w', 'х': 'x', 'у': 'y', // Cyrillic
}

// skeletons maps a stored username to the forms in which common
// look-alikes are equal: "alice", "alıce" (dotless i), "аlice" (Cyrillic
// a), "aIice" (capital I for a small l), "a1ice" and "ΑLICE" (Greek
// capital alpha) share one. A capital I reads as a small l in mixed case
// and as itself in capitals, so a name has two skeletons, one per reading,
// and two names look alike when they share one. This is a small,
// documented subset of the Unicode confusables (UTS #39), not all of them:
// accented letters are not look-alikes of plain ones ("é" is not "e"), and
// of the multi-letter look-alikes only "rn" for "m" is mapped.
func skeletons(s string) [2]string {
	return [2]string{skeleton(s, 'l'), skeleton(s, 'i')}
}

func skeleton(s string, capitalI rune) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if m, ok := upperLookAlikes[r]; ok {
			r = m
		}
		if r == 'I' {
			r = capitalI
		}
		r = unicode.ToLower(r)
		if m, ok := lowerLookAlikes[r]; ok {
			r = m
		}
		b.WriteRune(r)
	}
	return strings.ReplaceAll(b.String(), "rn", "m")
}

// skeletonsBucket indexes every user's skeletons (skeleton → user id), so
// that the look-alike check is two reads, not a scan of every user. The
// marker key skeletonsComplete says that every user is in it: a store from
// before the index gets it built, once, by the first create or rename.
const (
	skeletonsBucket   = "username_skeletons"
	skeletonsComplete = " complete" // no skeleton has a space
)

// claimSkeletons refuses name if another user (not id) has a username of
// one of its skeletons, and records them for id.
func claimSkeletons(tx storage.Tx, id, name string) error {
	if err := ensureSkeletonIndex(tx); err != nil {
		return err
	}
	sk := skeletons(name)
	for _, k := range sk {
		v, err := tx.Get(skeletonsBucket, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if string(v) != id {
			existing := "of another user"
			if rec, err := Read(tx, string(v)); err == nil {
				existing = rec.Username
			}
			return &LookAlikeError{Username: name, Existing: existing}
		}
	}
	for _, k := range sk {
		if err := tx.Put(skeletonsBucket, k, []byte(id)); err != nil {
			return err
		}
	}
	return nil
}

// releaseSkeletons removes the skeletons of name that are recorded for id.
func releaseSkeletons(tx storage.Tx, id, name string) error {
	for _, k := range skeletons(name) {
		v, err := tx.Get(skeletonsBucket, k)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && string(v) != id) {
			continue
		}
		if err != nil {
			return err
		}
		if err := tx.Delete(skeletonsBucket, k); err != nil {
			return err
		}
	}
	return nil
}

// ensureSkeletonIndex indexes every user's skeletons unless the index is
// complete. Users stored before the index that already look alike keep
// working; the first of them in id order holds the shared skeleton.
func ensureSkeletonIndex(tx storage.Tx) error {
	if _, err := tx.Get(skeletonsBucket, skeletonsComplete); err == nil {
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	type entry struct{ id, name string }
	var all []entry
	err := tx.Scan(usersBucket, "", func(k string, v []byte) error {
		var u struct {
			Username string `json:"username"`
		}
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("decode user %s: %w", k, err)
		}
		all = append(all, entry{k, u.Username})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range all {
		for _, k := range skeletons(e.name) {
			if _, err := tx.Get(skeletonsBucket, k); err == nil {
				continue
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err := tx.Put(skeletonsBucket, k, []byte(e.id)); err != nil {
				return err
			}
		}
	}
	return tx.Put(skeletonsBucket, skeletonsComplete, []byte("1"))
}
