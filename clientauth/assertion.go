package clientauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
)

// AssertionType is the client_assertion_type of private_key_jwt (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Defaults and limits of assertions.
const (
	// DefaultAssertionLifetime is how far ahead an assertion's exp may be.
	DefaultAssertionLifetime = 5 * time.Minute
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway   = 30 * time.Second
	maxAssertionLen = 16 << 10
	maxJTILen       = 256
)

// JTIBucket holds the jti of every accepted assertion until it expires:
// sha256(client id NUL jti) in hex → exp (unix seconds, decimal). It is in
// the store, not in memory, so an assertion replayed at another replica is
// refused too.
const JTIBucket = "client_assertion_jtis"

// base64url without padding, and refusing non-zero trailing bits: one
// spelling per assertion.
var strictB64 = base64.RawURLEncoding.Strict()

// verifiers are jwx's verifiers of the algorithms private_key_jwt accepts,
// made once.
var verifiers = func() map[string]jws.Verifier {
	m := map[string]jws.Verifier{}
	for _, a := range clients.AssertionAlgorithms() {
		v, err := jws.NewVerifier(jwa.SignatureAlgorithm(a))
		if err != nil {
			panic(fmt.Sprintf("clientauth: verifier for %s: %v", a, err)) // a programming error: the list is ours
		}
		m[a] = v
	}
	return m
}()

type assertionHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

type assertionClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *float64        `json:"exp"`
	Nbf *float64        `json:"nbf"`
	Iat *float64        `json:"iat"`
	Jti string          `json:"jti"`
}

// compactJWS is a parsed compact JWS: the exact signing input, the decoded
// signature, header and claims.
type compactJWS struct {
	input   []byte
	sig     []byte
	payload []byte
	header  assertionHeader
	claims  assertionClaims
}

// parseCompact parses a compact JWS strictly: three parts of canonical
// base64url, a JSON object header with a string alg and no crit, a JSON
// object payload. The signature is later checked over the exact text; the
// typ by the caller, which knows what kind of JWT it expects (typOK).
func parseCompact(tok string) (*compactJWS, error) {
	if len(tok) > maxAssertionLen {
		return nil, errors.New("longer than 16 KiB")
	}
	if strings.Count(tok, ".") != 2 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
		return nil, errors.New("not a compact JWS (three base64url parts)")
	}
	parts := strings.SplitN(tok, ".", 3)
	var raw [3][]byte
	for i, p := range parts {
		b, err := strictB64.DecodeString(p)
		if err != nil || len(b) == 0 {
			return nil, errors.New("a part is empty or not canonical base64url")
		}
		raw[i] = b
	}
	j := &compactJWS{input: []byte(tok[:len(parts[0])+1+len(parts[1])]), sig: raw[2], payload: raw[1]}
	if err := json.Unmarshal(raw[0], &j.header); err != nil || raw[0][0] != '{' {
		return nil, errors.New("header is not a JSON object")
	}
	if len(j.header.Crit) > 0 {
		return nil, errors.New("crit header parameters are not supported")
	}
	if err := json.Unmarshal(raw[1], &j.claims); err != nil || raw[1][0] != '{' {
		return nil, errors.New("payload is not a JSON object of JWT claims")
	}
	return j, nil
}

// typOK reports whether typ (media type, application/ optional, any case)
// is one of kinds. A JWT of another kind (an access token, a DPoP proof)
// is never taken for the one expected (RFC 8725 §3.11).
func typOK(typ string, kinds ...string) bool {
	return slices.Contains(kinds, strings.ToLower(strings.TrimPrefix(typ, "application/")))
}

// audiences reads aud as a string or an array of strings.
func audiences(raw json.RawMessage) []string {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err == nil {
		return many
	}
	return nil
}

func unix(f float64) int64 {
	if math.IsNaN(f) || f > math.MaxInt32*4 || f < 0 {
		return math.MaxInt64 // absurd: treated as far future by every check
	}
	return int64(f)
}

// authenticateAssertion is private_key_jwt: RFC 7523 §3 checks, the
// signature with the client's registered key (the algorithm comes from
// the key and the client's allowed list, never from the token alone) and
// the single use of jti in the store.
func (a *Authenticator) authenticateAssertion(ctx context.Context, req Request) (*clients.Entry, error) {
	if req.AssertionType != AssertionType {
		return nil, invalidClient("client_assertion_type must be "+AssertionType, false, nil)
	}
	if req.Assertion == "" {
		return nil, invalidRequest("client_assertion is required with client_assertion_type")
	}
	j, perr := parseCompact(req.Assertion)
	id := ""
	if perr == nil {
		id = j.claims.Sub
	}
	now := a.cfg.Now()
	g, err := a.guard(id, req.IP, false, now)
	if err != nil {
		return nil, err
	}
	if perr != nil {
		return g.fail("malformed client assertion: "+perr.Error(), nil)
	}
	c := j.claims
	if a.cfg.Federation != nil && c.Iss != c.Sub && a.cfg.Federation.Trusts(c.Iss) {
		return a.authenticateFederated(ctx, req, req.Assertion, false)
	}
	if !typOK(j.header.Typ, "", "jwt", "client-authentication+jwt") {
		return g.fail("malformed client assertion: typ must be absent, JWT or client-authentication+jwt", nil)
	}
	if c.Iss == "" || c.Iss != c.Sub {
		return g.fail("client assertion iss and sub must both be the client id", nil)
	}
	if req.ClientID != "" && req.ClientID != c.Sub {
		return nil, invalidRequest("client_id does not match the sub of the client assertion")
	}
	alg := j.header.Alg
	if alg == "none" || strings.HasPrefix(strings.ToUpper(alg), "HS") || verifiers[alg] == nil {
		return g.fail("client assertion alg must be one of "+strings.Join(clients.AssertionAlgorithms(), ", "), nil)
	}
	if problem := a.checkClaims(c, req.Endpoint, now); problem != "" {
		return g.fail(problem, nil)
	}

	ent, err := a.cfg.Clients.Lookup(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("authenticate client: %w", err) // not a refusal: the endpoint maps it (a store that did not answer is 503)
	}
	if ent == nil || !ent.KeyJWT {
		return g.fail("client authentication failed", nil)
	}
	if !slices.Contains(ent.Record.AssertionAlgs, alg) {
		return g.fail("client assertion alg "+alg+" is not allowed for this client (allowed: "+strings.Join(ent.Record.AssertionAlgs, ", ")+")", nil)
	}
	ok, err := a.verify(ctx, ent, j)
	if err != nil {
		a.log.WarnContext(ctx, "client keys unavailable", "client_id", id, "err", err.Error())
		return g.fail("the client's keys could not be fetched from its jwks_uri", err)
	}
	if !ok {
		return g.fail("client assertion signature does not verify with the client's registered keys", nil)
	}
	if ent.Record.Disabled {
		return g.fail("client is disabled", nil)
	}
	replay, err := a.useJTI(ctx, id, c.Jti, unix(*c.Exp), now)
	if err != nil {
		return nil, fmt.Errorf("record client assertion: %w", err) // not a refusal: the endpoint maps it (a store that did not answer is 503)
	}
	if replay {
		return g.fail("client assertion was already used (its jti is single use)", nil)
	}
	return ent, nil
}

// checkClaims is RFC 7523 §3 for a client assertion: "" when it passes.
func (a *Authenticator) checkClaims(c assertionClaims, endpoint string, now time.Time) string {
	if p := timeProblem("client assertion", c, now, a.cfg.Leeway, a.cfg.AssertionLifetime); p != "" {
		return p
	}
	switch {
	case c.Jti == "":
		return "client assertion has no jti"
	case len(c.Jti) > maxJTILen:
		return "client assertion jti is longer than 256 characters"
	}
	for _, aud := range audiences(c.Aud) {
		if aud == a.cfg.Issuer || aud == a.tokenEndpoint || (endpoint != "" && aud == endpoint) {
			return ""
		}
	}
	return "client assertion aud must name this server: its issuer or the endpoint URL"
}

// timeProblem is the RFC 7523 §3 time rules for a JWT named what: exp
// required, not past and at most lifetime ahead; nbf and iat not in the
// future; each within leeway. "" when they pass.
func timeProblem(what string, c assertionClaims, now time.Time, leeway, lifetime time.Duration) string {
	skew := int64(leeway / time.Second)
	t := now.Unix()
	switch {
	case c.Exp == nil:
		return what + " has no exp"
	case unix(*c.Exp) < t-skew:
		return what + " has expired"
	case unix(*c.Exp) > t+int64(lifetime/time.Second)+skew:
		return what + " exp is more than " + lifetime.String() + " ahead"
	case c.Nbf != nil && unix(*c.Nbf) > t+skew:
		return what + " is not valid yet (nbf)"
	case c.Iat != nil && unix(*c.Iat) > t+skew:
		return what + " iat is in the future"
	}
	return ""
}

// verify checks the signature with the client's keys that fit the alg
// (and the kid, when the assertion names one); a jwks_uri client's keys
// are fetched (verifyAt).
func (a *Authenticator) verify(ctx context.Context, ent *clients.Entry, j *compactJWS) (bool, error) {
	uri := ent.Record.JWKSURI
	if uri == "" {
		ok, _ := verifyWith(ent.Keys, j.header.Alg, j.header.Kid, j)
		return ok, nil
	}
	if a.cfg.Fetcher == nil {
		return false, errors.New("no outbound fetcher configured")
	}
	return verifyAt(ctx, a.cfg.Fetcher, uri, j)
}

// verifyAt verifies j with the JWK Set at uri, read through f (cached).
// A set that has no key with j's kid is fetched once more
// (outbound.Refresh, at most once per the fetcher's RefetchEvery per
// URL): its owner may just have rotated. A kid the set has, with a
// signature that does not verify, costs no fetch; nor does a token
// without kid, nor a token whose alg no key can verify (none, HMAC).
// This is the one implementation of "refetch on an unknown
// kid" for every key set Signet fetches on someone else's word: client
// jwks_uri, trusted issuers (package federation), upstream providers
// (package upstream).
func verifyAt(ctx context.Context, f *outbound.Fetcher, uri string, j *compactJWS) (bool, error) {
	if !AsymmetricAlg(j.header.Alg) {
		return false, nil
	}
	keys, err := outbound.Get(ctx, f, uri, clients.ParsePublicKeys)
	if err != nil {
		return false, err
	}
	alg, kid := j.header.Alg, j.header.Kid
	ok, known := verifyWith(keys, alg, kid, j)
	if !ok && !known && kid != "" {
		fresh, err := outbound.Refresh(ctx, f, uri, clients.ParsePublicKeys)
		if err != nil {
			return false, err
		}
		ok, _ = verifyWith(fresh, alg, kid, j)
	}
	return ok, nil
}

// verifyWith reports whether a key of keys fitting alg and kid verifies
// j, and whether any key had that kid.
func verifyWith(keys []clients.PublicKey, alg, kid string, j *compactJWS) (ok, known bool) {
	v := verifiers[alg]
	for _, k := range keys {
		if kid != "" && k.KID != kid {
			continue
		}
		known = true
		if !slices.Contains(k.Algs, alg) {
			continue
		}
		if v.Verify(j.input, j.sig, k.Key) == nil {
			return true, true
		}
	}
	return false, known
}

func jtiKey(clientID, jti string) string {
	h := sha256.Sum256([]byte(clientID + "\x00" + jti))
	return hex.EncodeToString(h[:])
}

// useJTI records the jti of an accepted assertion and reports whether it
// had been used before, in the store's replay cache (package replay, the
// one DPoP proofs use too), so of two replicas racing with the same
// assertion exactly one wins. The record outlives exp by the leeway, as
// long as the assertion could still be accepted.
func (a *Authenticator) useJTI(ctx context.Context, clientID, jti string, exp int64, _ time.Time) (bool, error) {
	fresh, err := a.jtis.Remember(ctx, jtiKey(clientID, jti), time.Unix(exp, 0).Add(a.cfg.Leeway))
	return !fresh, err
}

// Purge deletes the jti records of assertions that can no longer be
// accepted (past exp and the leeway). Run it on a schedule; signet serve
// runs it with the session purge.
func (a *Authenticator) Purge(ctx context.Context) storage.Purged {
	if a.jtis == nil {
		return storage.Purged{Kind: JTIBucket}
	}
	return a.jtis.Purge(ctx, JTIBucket)
}
