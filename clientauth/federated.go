package clientauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
)

// Federation verifies tokens of trusted external issuers (a Kubernetes
// service-account issuer, a SPIFFE trust domain, another OIDC issuer) and
// finds the client a token's issuer and subject are bound to (package
// federation implements it). A client assertion whose iss is a trusted
// issuer is such a token (Keycloak's federated client authentication);
// so is the assertion of a jwt-bearer grant sent without client
// credentials.
type Federation interface {
	// Trusts reports whether iss is a trusted external issuer.
	Trusts(iss string) bool
	// Identify verifies tok (signature, iss, aud, times and, when consume
	// is set, the single use of its jti) and returns the client bound to
	// its issuer and subject: the client clientID when it is given, else
	// the one client bound. A refusal is a non-empty problem (error_description
	// text), with err, if any, only logged; err alone is an internal
	// failure (a store that did not answer).
	Identify(ctx context.Context, reg *clients.Registry, clientID, tok string, consume bool) (ent *clients.Entry, problem string, err error)
}

// authenticateFederated authenticates the client bound to a federated
// token. For a grant assertion (grant set) the grant spends the jti
// after its own checks, and a refusal is invalid_grant: the assertion,
// not a client credential, failed.
func (a *Authenticator) authenticateFederated(ctx context.Context, req Request, tok string, grant bool) (*clients.Entry, error) {
	now := a.cfg.Now()
	g, err := a.guard(req.ClientID, req.IP, false, now)
	if err != nil {
		return nil, err
	}
	fail := func(problem string, err error) (*clients.Entry, error) {
		_, ferr := g.fail(problem, err)
		if ae, ok := ferr.(*Error); grant && ok && ae.Code == "invalid_client" {
			ae.Code, ae.Status = "invalid_grant", http.StatusBadRequest
		}
		return nil, ferr
	}
	ent, problem, err := a.cfg.Federation.Identify(ctx, a.cfg.Clients, req.ClientID, tok, !grant)
	switch {
	case problem != "":
		if err != nil {
			a.log.WarnContext(ctx, "federated token refused", "client_id", req.ClientID, "problem", problem, "err", err.Error())
		}
		return fail(problem, err)
	case err != nil:
		return nil, fmt.Errorf("authenticate federated client: %w", err) // not a refusal: the endpoint maps it
	case !ent.KeyJWT:
		return fail("client "+ent.Record.ID+" is not registered for "+clients.AuthPrivateKeyJWT, nil)
	case ent.Record.Disabled:
		return fail("client is disabled", nil)
	}
	return ent, nil
}

// JWT is a compact JWS parsed by the strict rules of client assertions
// (canonical base64url, no crit, at most 16 KiB) whose typ is one an
// external issuer's workload token has: absent (Kubernetes), JWT (GitHub
// Actions, SPIRE), JOSE (the SPIFFE JWT-SVID specification) or at+jwt (an
// RFC 9068 access token of another Signet); never a DPoP proof, a client
// assertion or a logout token. Its claims are not checked until its
// Verify and TimeProblem say so.
type JWT struct {
	Alg, Kid      string
	Iss, Sub, Jti string
	Aud           []string
	// Exp is the exp claim in unix seconds (0 when absent).
	Exp int64
	// Payload is the decoded claims object, for claims a caller maps.
	Payload []byte
	j       *compactJWS
}

// ParseJWT parses tok; the error says what is wrong with it.
func ParseJWT(tok string) (*JWT, error) {
	j, err := parseCompact(tok)
	if err != nil {
		return nil, err
	}
	if !typOK(j.header.Typ, "", "jwt", "jose", "at+jwt") {
		return nil, errors.New("typ must be absent, JWT, JOSE or at+jwt")
	}
	c := j.claims
	t := &JWT{Alg: j.header.Alg, Kid: j.header.Kid, Iss: c.Iss, Sub: c.Sub, Jti: c.Jti, Aud: audiences(c.Aud), Payload: j.payload, j: j}
	if c.Exp != nil {
		t.Exp = unix(*c.Exp)
	}
	return t, nil
}

// AsymmetricAlg reports whether alg is one Verify can check: an
// asymmetric JWS algorithm, never none or HMAC.
func AsymmetricAlg(alg string) bool { return verifiers[alg] != nil }

// Verify reports whether one of keys that fits the token's alg (and its
// kid, when it names one) verifies the signature, and whether any key had
// that kid: a false known with a kid means the key set may have rotated.
// The algorithm is the key's (PublicKey.Algs), never the token's alone.
func (t *JWT) Verify(keys []clients.PublicKey) (ok, known bool) {
	if !AsymmetricAlg(t.Alg) {
		return false, false
	}
	return verifyWith(keys, t.Alg, t.Kid, t.j)
}

// VerifyAt reports whether a key of the JWK Set at jwksURI, fetched
// through f (cached), verifies t; a set that lacks t's kid is fetched
// once more, rate-limited, as the owner may have rotated (verifyAt). The
// error is a fetch that failed (no usable set).
func (t *JWT) VerifyAt(ctx context.Context, f *outbound.Fetcher, jwksURI string) (bool, error) {
	return verifyAt(ctx, f, jwksURI, t.j)
}

// TimeProblem is the RFC 7523 §3 time rules (exp required and at most
// lifetime ahead, nbf and iat not in the future, within leeway) for a
// token named what; "" when they pass.
func (t *JWT) TimeProblem(what string, now time.Time, leeway, lifetime time.Duration) string {
	return timeProblem(what, t.j.claims, now, leeway, lifetime)
}
