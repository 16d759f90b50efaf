package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
)

// Grant is the RFC 7523 §2.1 jwt-bearer grant (authority.Grant, mounted
// under clients.GrantJWTBearer): the assertion parameter is a token of a
// trusted issuer bound to the client. The client authenticated by its own
// means, or, sending no credentials, was identified by this same
// assertion (clientauth, which leaves its jti to this check). The access
// token's sub is the client id, as for client_credentials; it carries the
// claims the issuer's policy maps, and never outlives the external token.
func (f *Federation) Grant(ctx context.Context, req authority.GrantRequest) (authority.Issue, error) {
	tok := req.Form.Get("assertion")
	if tok == "" {
		return authority.Issue{}, authority.InvalidRequest("assertion is required (RFC 7523 section 2.1)")
	}
	v, problem, err := f.verify(ctx, tok, true, func(*clientauth.JWT) ([]*clients.Entry, error) {
		return []*clients.Entry{req.Client}, nil
	})
	if err != nil && problem == "" {
		return authority.Issue{}, authority.ServerError(err)
	}
	if problem != "" {
		if err != nil {
			f.log.WarnContext(ctx, "federated grant refused", "client_id", req.Client.Record.ID, "problem", problem, "err", err.Error())
		}
		return authority.Issue{}, &authority.Error{Code: "invalid_grant", Description: problem, Status: http.StatusBadRequest}
	}
	scope, err := authority.GrantScope(req.Client, req.Scope)
	if err != nil {
		return authority.Issue{}, err
	}
	aud, err := authority.GrantAudience(req.Client, req.Audience, req.Resources)
	if err != nil {
		return authority.Issue{}, err
	}
	return authority.Issue{Subject: req.Client.Record.ID, Scope: scope, Audience: aud,
		Claims: mapClaims(v.is.Claims, v.tok.Payload), Expires: time.Unix(v.tok.Exp, 0)}, nil
}

// mapClaims copies the mapped claims of payload under their new names:
// strings, numbers, booleans and arrays of them, each at most 1 KiB of
// JSON; an absent claim or another shape is left out.
func mapClaims(mapping map[string]string, payload []byte) map[string]any {
	if len(mapping) == 0 {
		return nil
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil
	}
	out := map[string]any{}
	for src, dst := range mapping {
		raw, ok := lookup(claims, src)
		if !ok || len(raw) > maxMappedValue {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil || !scalarOrList(v) {
			continue
		}
		out[dst] = v
	}
	return out
}

func scalarOrList(v any) bool {
	switch x := v.(type) {
	case string, float64, bool:
		return true
	case []any:
		return !slices.ContainsFunc(x, func(e any) bool {
			switch e.(type) {
			case string, float64, bool:
				return false
			}
			return true
		})
	}
	return false
}

// lookup finds a dotted path in claims whose names may hold dots
// themselves (kubernetes.io.namespace is "namespace" in "kubernetes.io"):
// the whole path as a name first, then the longest name that is a prefix
// and an object.
func lookup(claims map[string]json.RawMessage, path string) (json.RawMessage, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		raw, ok := claims[path[:i]]
		if !ok {
			continue
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) != nil {
			continue
		}
		if v, ok := lookup(inner, path[i+1:]); ok {
			return v, true
		}
	}
	return nil, false
}
