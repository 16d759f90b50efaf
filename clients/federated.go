package clients

import (
	"slices"
	"strings"
)

// FederatedIdentity binds a workload identity of a trusted external issuer
// (a Kubernetes service account, a SPIFFE ID, a CI job) to a client: a
// token that issuer signed for that subject authenticates as the client,
// without a secret (package federation).
type FederatedIdentity struct {
	// Issuer is the token's iss, exactly; the operator declares it trusted
	// in the federation: section.
	Issuer string `json:"issuer"`
	// Subject is the token's sub, exactly, or a pattern in which a "*"
	// that is a whole segment (between ':' or '/' delimiters) stands for
	// one segment of [A-Za-z0-9._-], never "." or "..":
	// system:serviceaccount:payments:* or spiffe://example.org/ns/payments/sa/*.
	Subject string `json:"subject"`
	// Audience is the aud the token must carry; "" accepts the audiences
	// the issuer's trust policy names (default Signet's issuer and token
	// endpoint URLs).
	Audience string `json:"audience,omitempty"`
}

// Limits of a federated identity.
const (
	maxFederated        = 32
	maxFederatedSubject = 512
	maxFederatedIssuer  = 2048
)

// Matches reports whether a token from iss with subject sub is this
// identity. A wildcard segment matches only characters that cannot
// delimit, escape or disguise a segment, so no crafted subject
// (payments:x:y, "..", an empty segment, a non-ASCII look-alike) reaches
// past it.
func (f FederatedIdentity) Matches(iss, sub string) bool {
	if iss != f.Issuer || sub == "" {
		return false
	}
	lits := strings.Split(f.Subject, "*")
	if len(lits) == 1 {
		return sub == f.Subject
	}
	rest, ok := strings.CutPrefix(sub, lits[0])
	if !ok {
		return false
	}
	for _, lit := range lits[1:] {
		n := 0
		for n < len(rest) && segmentByte(rest[n]) {
			n++
		}
		if seg := rest[:n]; seg == "" || seg == "." || seg == ".." {
			return false
		}
		if rest, ok = strings.CutPrefix(rest[n:], lit); !ok {
			return false
		}
	}
	return rest == ""
}

func segmentByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
}

func delimiter(b byte) bool { return b == ':' || b == '/' }

// federatedSubjectProblem says why s is not a valid subject or pattern.
func federatedSubjectProblem(s string) string {
	switch {
	case s == "" || len(s) > maxFederatedSubject:
		return "subject must be 1 to 512 characters"
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return "subject " + QuoteValue(s) + " must be printable ASCII without spaces"
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '*' {
			continue
		}
		if i > 0 && !delimiter(s[i-1]) || i+1 < len(s) && !delimiter(s[i+1]) {
			return "subject " + QuoteValue(s) + ": a * must be a whole segment, between ':' or '/' delimiters (system:serviceaccount:payments:*)"
		}
		if i == 0 {
			return "subject " + QuoteValue(s) + ": a pattern must begin with a literal prefix"
		}
	}
	return ""
}

// validateFederated checks federated_identities.
func validateFederated(cl *Client, bad func(field, problem string)) {
	const field = "federated_identities"
	if len(cl.Federated) > maxFederated {
		bad(field, "at most 32 identities")
	}
	for i, f := range cl.Federated {
		switch {
		case f.Issuer == "" || len(f.Issuer) > maxFederatedIssuer || strings.ContainsFunc(f.Issuer, func(r rune) bool { return r < 0x21 || r > 0x7e }):
			bad(field, "issuer "+QuoteValue(f.Issuer)+" must be 1 to 2048 printable characters without spaces (the tokens' iss)")
		case strings.Contains(f.Issuer, "*"):
			bad(field, "issuer "+QuoteValue(f.Issuer)+" must be exact: only the subject may be a pattern")
		}
		if p := federatedSubjectProblem(f.Subject); p != "" {
			bad(field, p)
		}
		if f.Audience != "" && !validAudience(f.Audience) {
			bad(field, "audience "+QuoteValue(f.Audience)+" must be 1 to 256 printable characters without spaces")
		}
		for _, g := range cl.Federated[:i] {
			if g.Issuer == f.Issuer && g.Subject == f.Subject {
				bad(field, "duplicate identity "+QuoteValue(f.Issuer+"="+f.Subject))
			}
		}
	}
	if len(cl.Federated) > 0 {
		if cl.Public {
			bad(field, "a public client cannot hold a federated identity: it would be a confidential client")
		}
		if !slices.Contains(cl.AuthMethods, AuthPrivateKeyJWT) {
			bad(field, "needs token_endpoint_auth_methods "+AuthPrivateKeyJWT+" (the external token is sent as a client assertion)")
		}
	}
}

// BoundTo returns the clients with a federated identity that iss and sub
// match, from the in-memory copy (Watch); a registry without one (the
// offline tools) has none. It walks every client: a request that names
// its client_id is looked up directly instead.
func (c *Registry) BoundTo(iss, sub string) []*Entry {
	var out []*Entry
	if !c.cached {
		return nil
	}
	c.cache.Range(func(_, v any) bool {
		e := v.(*Entry)
		if slices.ContainsFunc(e.Record.Federated, func(f FederatedIdentity) bool { return f.Matches(iss, sub) }) {
			out = append(out, e)
		}
		return true
	})
	return out
}
