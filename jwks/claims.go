package jwks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
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

	// bound: the token has a cnf claim (RFC 7800), and jkt is its
	// cnf.jkt (RFC 9449 §6.1) when that is a string; read while the
	// registered claims are, so the DPoP checks cost no full decode.
	bound bool
	jkt   string

	raw *rawClaims
}

// rawClaims is every claim, decoded from the payload on the first Get or
// Raw: most requests only read the registered fields, and decoding every
// member into a map cost more than the rest of Verify together.
type rawClaims struct {
	once    sync.Once
	payload []byte
	m       map[string]any
}

func (r *rawClaims) get() map[string]any {
	if r == nil {
		return nil
	}
	r.once.Do(func() {
		// parseClaims has validated the payload and rejected duplicate
		// members, so this decode cannot fail or keep a member twice.
		dec := json.NewDecoder(bytes.NewReader(r.payload))
		dec.UseNumber()
		_ = dec.Decode(&r.m)
	})
	return r.m
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
	v, ok := c.raw.get()[name]
	return v, ok
}

// Raw returns a shallow copy of every claim, registered ones included.
func (c *Claims) Raw() map[string]any { return maps.Clone(c.raw.get()) }

// parseClaims decodes the payload strictly (an object, no duplicate
// members: a parser that kept the first and one that kept the last would
// read different claims) and fills the registered fields with type checks.
// It does not judge times or values: checkClaims does. It also returns
// which requiredClaims are present (a null counts as present, and fails
// its type check).
func parseClaims(payload []byte) (*Claims, uint, error) {
	var buf [16]member
	members, err := topLevelMembers(payload, buf[:0])
	if err != nil {
		return nil, 0, err
	}
	c := &Claims{raw: &rawClaims{payload: payload}}
	var present uint
	for _, m := range members {
		for i, r := range requiredClaims {
			if string(m.name) == r {
				present |= 1 << i
			}
		}
		var err error
		switch string(m.name) {
		case "iss":
			c.Issuer, err = stringValue(m)
		case "sub":
			c.Subject, err = stringValue(m)
		case "jti":
			c.JWTID, err = stringValue(m)
		case "client_id":
			c.ClientID, err = stringValue(m)
		case "scope":
			c.Scope, err = stringValue(m)
		case "exp":
			c.Expiry, err = timeValue(m)
		case "iat":
			c.IssuedAt, err = timeValue(m)
		case "nbf":
			c.NotBefore, err = timeValue(m)
		case "aud":
			c.Audience, err = audienceValue(m)
		case "cnf":
			c.bound = true
			var cnf struct {
				JKT any `json:"jkt"`
			}
			if json.Unmarshal(m.value, &cnf) == nil {
				c.jkt, _ = cnf.JKT.(string)
			}
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return c, present, nil
}

// requiredClaims must be present in every access token (RFC 9068 §2.2).
var requiredClaims = [...]string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id"}

func stringValue(m member) (string, error) {
	v := m.value
	if len(v) >= 2 && v[0] == '"' && !bytes.ContainsAny(v[1:len(v)-1], "\"\\") && utf8.Valid(v) {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", fmt.Errorf("claim %q is not a string: %w", m.name, ErrMalformed)
	}
	return s, nil
}

// maxNumericDate is 9999-12-31T23:59:59Z; larger values are an attack or a
// bug, and they would overflow time arithmetic.
const maxNumericDate = 253402300799

func timeValue(m member) (time.Time, error) {
	if len(m.value) == 0 || (m.value[0] != '-' && (m.value[0] < '0' || m.value[0] > '9')) {
		return time.Time{}, fmt.Errorf("claim %q is not a number: %w", m.name, ErrMalformed)
	}
	f, err := strconv.ParseFloat(string(m.value), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("claim %q is out of range: %w", m.name, ErrMalformed)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

func audienceValue(m member) ([]string, error) {
	if len(m.value) > 0 && m.value[0] == '"' {
		s, err := stringValue(m)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var list []any
	if len(m.value) == 0 || m.value[0] != '[' || json.Unmarshal(m.value, &list) != nil {
		return nil, fmt.Errorf("aud is neither string nor array: %w", ErrMalformed)
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("aud element is not a string: %w", ErrMalformed)
		}
		out = append(out, s)
	}
	return out, nil
}

// checkClaims applies RFC 9068 §4 and RFC 7519 §4.1 to verified claims.
func (v *Verifier) checkClaims(c *Claims, present uint) error {
	for i, name := range requiredClaims {
		if present&(1<<i) == 0 {
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

// member is one top-level member of a JSON object: its name, unescaped,
// and its value's JSON text.
type member struct{ name, value []byte }

// topLevelMembers appends the members of the JSON object in data to dst,
// in order. Invalid JSON, a non-object, trailing data, duplicate member
// names (compared unescaped) are ErrMalformed. It allocates only for a
// name with escapes, and for a set of names past 16.
func topLevelMembers(data []byte, dst []member) ([]member, error) {
	// json.Valid checks the whole text (trailing data included) without
	// allocating; the scan below then only has to find the boundaries.
	if !json.Valid(data) {
		return nil, fmt.Errorf("bad JSON: %w", ErrMalformed)
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, fmt.Errorf("not a JSON object: %w", ErrMalformed)
	}
	i = skipSpace(data, i+1)
	// A scan of dst is cheapest for the dozen members a token has; a map
	// keeps a header stuffed with thousands of members linear.
	var seen map[string]bool
	for data[i] != '}' {
		end := skipString(data, i)
		name := data[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 || !utf8.Valid(name) {
			// Compare names as encoding/json reads them: escapes decoded,
			// invalid UTF-8 replaced (so "a\xff" and "a\xfe" are the same).
			var s string
			_ = json.Unmarshal(data[i:end], &s) // valid: json.Valid said so
			name = []byte(s)
		}
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		vend := skipValue(data, i)
		dup := false
		if seen != nil {
			dup = seen[string(name)]
			seen[string(name)] = true
		} else {
			for _, m := range dst {
				dup = dup || bytes.Equal(m.name, name)
			}
			if len(dst) == 16 {
				seen = make(map[string]bool, 64)
				for _, m := range dst {
					seen[string(m.name)] = true
				}
				seen[string(name)] = true
			}
		}
		if dup {
			return nil, fmt.Errorf("duplicate member %q: %w", safeForMessage(string(name)), ErrMalformed)
		}
		dst = append(dst, member{name: name, value: data[i:vend]})
		i = skipSpace(data, vend)
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return dst, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the valid JSON string starting at i.
func skipString(data []byte, i int) int {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue returns the index after the valid JSON value starting at i.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(data) && !strings.ContainsRune(",}] \t\n\r", rune(data[i])) {
		i++
	}
	return i
}
