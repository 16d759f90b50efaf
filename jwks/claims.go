package jwks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Claims are the claims of a verified access token (RFC 9068 §2.2).
// Registered claims are fields; Get and Raw reach the rest.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	IssuedAt  time.Time
	NotBefore time.Time // zero when the token has no nbf
	JWTID     string
	ClientID  string
	Scope     string // space-separated, as in the token

	raw map[string]any
}

// Scopes splits Scope on spaces, as HasScope does. Only the space
// separates scope tokens (RFC 6749 section 3.3): a TAB or a no-break space
// stays inside a token, so Scopes never names a scope HasScope denies.
func (c *Claims) Scopes() []string {
	var out []string
	for tok := range strings.SplitSeq(c.Scope, " ") {
		if tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// HasScope reports whether s is one of the token's scopes.
func (c *Claims) HasScope(s string) bool {
	for rest := c.Scope; rest != ""; {
		var tok string
		tok, rest, _ = strings.Cut(rest, " ")
		if tok == s && s != "" {
			return true
		}
	}
	return false
}

// Get returns a claim as decoded by encoding/json, except that numbers are
// json.Number so large integers keep their precision.
func (c *Claims) Get(name string) (any, bool) {
	v, ok := c.raw[name]
	return v, ok
}

// Raw returns a shallow copy of every claim, registered ones included.
func (c *Claims) Raw() map[string]any { return maps.Clone(c.raw) }

// parseClaims decodes the payload strictly (an object, no duplicate
// members: a parser that kept the first and one that kept the last would
// read different claims) and fills the registered fields with type checks. It does not judge times or values: checkClaims does.
func parseClaims(payload []byte) (*Claims, error) {
	c := &Claims{raw: make(map[string]any, 12)}
	err := walkObject(payload, func(name string, dec *json.Decoder) error {
		var v any
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("claim %q: %w", name, ErrMalformed)
		}
		c.raw[name] = v
		return nil
	})
	if err != nil {
		return nil, err
	}

	for _, f := range []struct {
		name string
		dst  *string
	}{{"iss", &c.Issuer}, {"sub", &c.Subject}, {"jti", &c.JWTID}, {"client_id", &c.ClientID}, {"scope", &c.Scope}} {
		if err := stringClaim(c.raw, f.name, f.dst); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"exp", &c.Expiry}, {"iat", &c.IssuedAt}, {"nbf", &c.NotBefore}} {
		if err := timeClaim(c.raw, f.name, f.dst); err != nil {
			return nil, err
		}
	}
	switch aud := c.raw["aud"].(type) {
	case nil:
	case string:
		c.Audience = []string{aud}
	case []any:
		c.Audience = make([]string, 0, len(aud))
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("aud element is not a string: %w", ErrMalformed)
			}
			c.Audience = append(c.Audience, s)
		}
	default:
		return nil, fmt.Errorf("aud is neither string nor array: %w", ErrMalformed)
	}
	return c, nil
}

func stringClaim(raw map[string]any, name string, dst *string) error {
	v, ok := raw[name]
	if !ok {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("claim %q is not a string: %w", name, ErrMalformed)
	}
	*dst = s
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z; larger values are an attack or a
// bug, and they would overflow time arithmetic.
const maxNumericDate = 253402300799

func timeClaim(raw map[string]any, name string, dst *time.Time) error {
	v, ok := raw[name]
	if !ok {
		return nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return fmt.Errorf("claim %q is not a number: %w", name, ErrMalformed)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return fmt.Errorf("claim %q is out of range: %w", name, ErrMalformed)
	}
	sec, frac := math.Modf(f)
	*dst = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// checkClaims applies RFC 9068 §4 and RFC 7519 §4.1 to verified claims.
func (v *Verifier) checkClaims(c *Claims) error {
	for _, name := range [...]string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id"} {
		if _, ok := c.raw[name]; !ok {
			return fmt.Errorf("claim %q: %w", name, ErrMissingClaim)
		}
	}
	if c.Issuer != v.issuer {
		return fmt.Errorf("iss: %w", ErrIssuer)
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return fmt.Errorf("aud: %w", ErrAudience)
	}
	now := v.now()
	if now.After(c.Expiry.Add(v.leeway)) {
		return fmt.Errorf("exp %s: %w", c.Expiry.UTC().Format(time.RFC3339), ErrExpired)
	}
	if !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore) {
		return fmt.Errorf("nbf %s: %w", c.NotBefore.UTC().Format(time.RFC3339), ErrNotYetValid)
	}
	if now.Add(v.leeway).Before(c.IssuedAt) {
		return fmt.Errorf("iat %s: %w", c.IssuedAt.UTC().Format(time.RFC3339), ErrIssuedInFuture)
	}
	return nil
}

// walkObject calls fn for each member of the JSON object in data, in order,
// with dec positioned before the member's value; fn must consume exactly
// that value. Duplicate member names, trailing data and non-objects are
// ErrMalformed.
func walkObject(data []byte, fn func(name string, dec *json.Decoder) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("not a JSON object: %w", ErrMalformed)
	}
	// A slice is cheapest for the dozen members a token has; a map keeps a
	// header stuffed with thousands of members linear.
	seen := make([]string, 0, 16)
	var seenMap map[string]bool
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("bad JSON: %w", ErrMalformed)
		}
		name, _ := t.(string)
		dup := false
		if seenMap != nil {
			dup = seenMap[name]
			seenMap[name] = true
		} else {
			dup = slices.Contains(seen, name)
			seen = append(seen, name)
			if len(seen) == cap(seen) {
				seenMap = make(map[string]bool, 2*len(seen))
				for _, s := range seen {
					seenMap[s] = true
				}
			}
		}
		if dup {
			return fmt.Errorf("duplicate member %q: %w", safeForMessage(name), ErrMalformed)
		}
		if err := fn(name, dec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fmt.Errorf("bad JSON: %w", ErrMalformed)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("data after JSON object: %w", ErrMalformed)
	}
	return nil
}

func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("bad JSON: %w", ErrMalformed)
	}
	return nil
}
