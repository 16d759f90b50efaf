package jwks

import (
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
//	  "revoked_jtis":    {"<jti>": <exp>, ...},
//	  "subject_cutoffs": {"<sub>": <cutoff>, ...}
//	}
//
// revoked_jtis maps the jti of each revoked access token to that token's
// exp (integer seconds since the epoch). A token whose jti is listed is
// rejected with ErrRevoked; the exp only tells the server when it may drop
// the entry (once exp plus the verifiers' leeway has passed, the token is
// rejected as expired anyway).
//
// subject_cutoffs maps a sub to integer seconds since the epoch: a token of
// that subject whose iat is strictly before the cutoff is rejected with
// ErrRevoked; iat equal to or after it is accepted. The server may drop an
// entry once cutoff plus the longest token lifetime plus leeway has passed.
//
// Both members are optional (absent means empty); other members are
// ignored; values that are not integers make the whole document invalid.
type RevocationFeed struct {
	RevokedJTIs    map[string]int64 `json:"revoked_jtis"`
	SubjectCutoffs map[string]int64 `json:"subject_cutoffs"`
}

// denySnapshot is an immutable decoded feed.
type denySnapshot struct {
	jtis    map[string]int64
	cutoffs map[string]int64
}

func parseDenylist(body []byte) (*denySnapshot, error) {
	var f RevocationFeed
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, fmt.Errorf("decode revocation feed: %w", err)
	}
	return &denySnapshot{jtis: f.RevokedJTIs, cutoffs: f.SubjectCutoffs}, nil
}

func (d *denySnapshot) check(c *Claims) error {
	if _, ok := d.jtis[c.JWTID]; ok {
		return fmt.Errorf("jti on the denylist: %w", ErrRevoked)
	}
	if cutoff, ok := d.cutoffs[c.Subject]; ok && c.IssuedAt.Before(time.Unix(cutoff, 0)) {
		return fmt.Errorf("issued before the subject's cutoff: %w", ErrRevoked)
	}
	return nil
}
