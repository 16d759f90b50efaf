package jwks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// RevocationFeed is the document a Verifier with WithDenylist(true) polls.
// Signet serves it; this type is its definition.
//
// Location: the authorization server metadata member "revocation_feed"
// holds its absolute URL. When the metadata has no such member (or
// discovery is skipped with WithJWKSURL), the verifier uses
// WithRevocationFeedURL, else issuer + "/oauth2/revocations".
//
// Protocol: GET, answered 200 with Content-Type application/json and the
// body below, at most 4 MiB. The server should send an ETag and
// Cache-Control: max-age=N; the verifier revalidates with If-None-Match
// after N seconds (bounded like the JWKS refresh: at least the min refresh
// interval, at most an hour, 5 minutes without max-age) and keeps its lists
// on 304. On an error status, a transport error or a body that does not
// decode, it keeps the last good lists and reports the failure in Healthy
// and Stats.
//
// Body:
//
//	{
//	  "revoked_jtis":         {"<jti>": <exp>, ...},
//	  "subject_cutoffs_hmac": {"<subject hash>": <cutoff>, ...},
//	  "subject_cutoffs":      {"<sub>": <cutoff>, ...}
//	}
//
// revoked_jtis maps the jti of each revoked access token to that token's
// exp (integer seconds since the epoch). A token whose jti is listed is
// rejected with ErrRevoked; the exp only tells the server when it may drop
// the entry (once exp plus the verifiers' leeway has passed, the token is
// rejected as expired anyway).
//
// subject_cutoffs_hmac maps a subject hash to integer seconds since the
// epoch: a token whose sub hashes to a listed value and whose iat is
// strictly before the cutoff is rejected with ErrRevoked; iat equal to or
// after it is accepted. The subject hash is base64url without padding of
// HMAC-SHA256(key, sub), with the key the server's operator gives its
// verifiers (WithDenylistSubjectKey; `signet keys feed-key` prints
// Signet's): the feed is public, and it names no user. A verifier without
// the key cannot apply these cutoffs (Stats.SubjectKeyMissing says so).
// The server may drop an entry once cutoff plus the longest token lifetime
// plus leeway has passed.
//
// subject_cutoffs is the same with the sub itself as the member name, as
// Signet served it before it hashed subjects; it is still honoured.
//
// Both members are optional (absent means empty); other members are
// ignored; values that are not integers make the whole document invalid.
type RevocationFeed struct {
	RevokedJTIs        map[string]int64 `json:"revoked_jtis"`
	SubjectCutoffsHMAC map[string]int64 `json:"subject_cutoffs_hmac"`
	SubjectCutoffs     map[string]int64 `json:"subject_cutoffs"`
}

// SubjectHash is the name of sub in subject_cutoffs_hmac under key.
func SubjectHash(key []byte, sub string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sub))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// denySnapshot is an immutable decoded feed.
type denySnapshot struct {
	jtis       map[string]int64
	cutoffs    map[string]int64
	hashed     map[string]int64
	subjectKey []byte
	keyMissing bool // hashed cutoffs listed, no key to apply them
}

func parseDenylist(body []byte, subjectKey []byte) (*denySnapshot, error) {
	var f RevocationFeed
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, fmt.Errorf("decode revocation feed: %w", err)
	}
	return &denySnapshot{jtis: f.RevokedJTIs, cutoffs: f.SubjectCutoffs, hashed: f.SubjectCutoffsHMAC,
		subjectKey: subjectKey, keyMissing: len(f.SubjectCutoffsHMAC) > 0 && len(subjectKey) == 0}, nil
}

func (d *denySnapshot) check(c *Claims) error {
	if _, ok := d.jtis[c.JWTID]; ok {
		return fmt.Errorf("jti on the denylist: %w", ErrRevoked)
	}
	if cutoff, ok := d.cutoffs[c.Subject]; ok && c.IssuedAt.Before(time.Unix(cutoff, 0)) {
		return fmt.Errorf("issued before the subject's cutoff: %w", ErrRevoked)
	}
	if len(d.hashed) > 0 && len(d.subjectKey) > 0 {
		if cutoff, ok := d.hashed[SubjectHash(d.subjectKey, c.Subject)]; ok && c.IssuedAt.Before(time.Unix(cutoff, 0)) {
			return fmt.Errorf("issued before the subject's cutoff: %w", ErrRevoked)
		}
	}
	return nil
}
