// Package exchange is RFC 8693 token exchange at Signet's token endpoint
// (authority.Config.Grants[clients.GrantTokenExchange]): a service that
// holds a user's Signet token gets a token for another service on the
// user's behalf, which says who acted (act) and can only be narrower than
// what it was given.
//
// The rules, each a test row in exchange_test.go:
//   - subject_token is a live Signet access or ID token (authority.VerifyToken:
//     signature with the key's algorithm, iss, exp, not revoked, not cut off
//     by a logout) addressed to the requesting client: its aud includes the
//     client id. So a token is exchanged only by the service it was sent to,
//     and an ID token only by the client it was issued to.
//   - actor_token, when given, is a live Signet token issued to the
//     requesting client; its sub is the actor. Without it the client is.
//   - the result is audienced to the requested audience and resource
//     values, each one of the client's token_exchange_audiences
//     (invalid_target otherwise); its scope is the intersection of the
//     subject token's and the client's (asking for more is invalid_scope);
//     it expires no later than the subject (and actor) token; its act
//     claim names the actor and nests the subject token's act (§4.1), at
//     most MaxChain actors deep.
//   - a DPoP-bound subject token is exchanged only with a proof of its key.
package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/signet-auth/signet/authority"
)

// RFC 8693 §3 token type identifiers Signet reads and issues.
const (
	TypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// MaxChain bounds the actors an act claim nests: each exchange adds one,
// and a token longer than Signet reads (4 KiB) would be useless anyway.
const MaxChain = 8

// chainDepth is the number of actors act names (0 for none).
func chainDepth(act json.RawMessage) int {
	n := 0
	for len(act) > 0 && n < MaxChain {
		var a struct {
			Act json.RawMessage `json:"act"`
		}
		if json.Unmarshal(act, &a) != nil {
			break
		}
		n, act = n+1, a.Act
	}
	return n
}

// Tokens verifies Signet's own tokens: *authority.Server.
type Tokens interface {
	VerifyToken(ctx context.Context, tok string, kind authority.TokenKind) (authority.Token, error)
	// UserScope applies the privileged-scope rule to a user's scope as
	// the user is now (authority.Server.UserScope).
	UserScope(ctx context.Context, sub, scope string, named []string) (string, error)
}

// Grant is the token exchange grant. Its Tokens are set once the
// authority exists (the authority's Config takes the grant first), before
// the server serves.
type Grant struct {
	Tokens Tokens
}

// Grant implements authority.Grant.
func (g *Grant) Grant(ctx context.Context, req authority.GrantRequest) (authority.Issue, error) {
	f := req.Form
	if rt := f.Get("requested_token_type"); rt != "" && rt != TypeAccessToken {
		return authority.Issue{}, authority.InvalidRequest("requested_token_type must be " + TypeAccessToken + ": Signet exchanges into access tokens")
	}
	subject, err := g.token(ctx, req, "subject_token")
	if err != nil {
		return authority.Issue{}, err
	}
	if !slices.Contains(subject.Aud, req.Client.Record.ID) {
		return authority.Issue{}, authority.InvalidRequest("subject_token is not addressed to this client: its aud must include the client id")
	}
	if subject.JKT != "" && subject.JKT != req.DPoPJKT {
		return authority.Issue{}, authority.InvalidRequest("subject_token is bound to a DPoP key: send the request with a DPoP proof of that key")
	}
	actor, expires := req.Client.Record.ID, subject.Exp
	if f.Get("actor_token") != "" || f.Get("actor_token_type") != "" {
		a, err := g.token(ctx, req, "actor_token")
		if err != nil {
			return authority.Issue{}, err
		}
		if a.ClientID != req.Client.Record.ID {
			return authority.Issue{}, authority.InvalidRequest("actor_token was not issued to this client")
		}
		actor = a.Sub
		if a.Exp.Before(expires) {
			expires = a.Exp
		}
	}
	aud, err := targets(req)
	if err != nil {
		return authority.Issue{}, err
	}
	scope, err := narrowScope(req, subject.Scope)
	if err != nil {
		return authority.Issue{}, err
	}
	if subject.Sub != subject.ClientID {
		// A user's token: a privileged scope (signet:*) goes on only
		// while the user still holds its role, as at every user grant.
		if scope, err = g.Tokens.UserScope(ctx, subject.Sub, scope, strings.Fields(req.Scope)); err != nil {
			return authority.Issue{}, err
		}
	}
	if chainDepth(subject.Act) >= MaxChain {
		return authority.Issue{}, authority.InvalidRequest(fmt.Sprintf("the delegation chain of subject_token is already %d actors long", MaxChain))
	}
	act := map[string]any{"sub": actor}
	if len(subject.Act) > 0 {
		act["act"] = subject.Act // the prior actors, nested (RFC 8693 §4.1)
	}
	return authority.Issue{
		Subject: subject.Sub, Scope: scope, Audience: aud,
		Claims: map[string]any{"act": act}, Expires: expires, IssuedTokenType: TypeAccessToken,
	}, nil
}

// token verifies the form's subject_token or actor_token (name) of its
// declared type.
func (g *Grant) token(ctx context.Context, req authority.GrantRequest, name string) (authority.Token, error) {
	tok, typ := req.Form.Get(name), req.Form.Get(name+"_type")
	if tok == "" || typ == "" {
		return authority.Token{}, authority.InvalidRequest(name + " and " + name + "_type are required together")
	}
	kind := authority.AccessToken
	switch typ {
	case TypeAccessToken:
	case TypeIDToken:
		kind = authority.IDToken
	default:
		return authority.Token{}, authority.InvalidRequest(name + "_type must be " + TypeAccessToken + " or " + TypeIDToken)
	}
	t, err := g.Tokens.VerifyToken(ctx, tok, kind)
	switch {
	case errors.Is(err, authority.ErrTokenRefused):
		// RFC 8693 §2.2.2: an invalid subject or actor token is invalid_request.
		return t, authority.InvalidRequest(name + " is refused: " + strings.TrimPrefix(err.Error(), authority.ErrTokenRefused.Error()+": "))
	case err != nil:
		return t, authority.ServerError(fmt.Errorf("token exchange: verify %s: %w", name, err))
	}
	return t, nil
}

// targets are the requested audience and resource values, each one the
// client may exchange into; one at least is required.
func targets(req authority.GrantRequest) ([]string, error) {
	var out []string
	if req.Audience != "" {
		out = append(out, req.Audience)
	}
	for _, r := range req.Resources {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, authority.InvalidRequest("audience or resource is required: the service the exchanged token is for")
	}
	for _, a := range out {
		if !slices.Contains(req.Client.Record.ExchangeAudiences, a) {
			return nil, &authority.Error{Code: "invalid_target", Description: "the client may not exchange tokens for this audience", Status: http.StatusBadRequest}
		}
	}
	return out, nil
}

// narrowScope is the scope of the exchanged token: the requested scope,
// every one of which the subject token and the client both have; or, when
// none is asked, all those they share.
func narrowScope(req authority.GrantRequest, subjectScope string) (string, error) {
	var shared []string
	for _, s := range strings.Fields(subjectScope) {
		if slices.Contains(req.Client.Record.Scopes, s) {
			shared = append(shared, s)
		}
	}
	if req.Scope == "" {
		return strings.Join(shared, " "), nil
	}
	var out []string
	for _, s := range strings.Split(req.Scope, " ") {
		if !slices.Contains(shared, s) {
			return "", &authority.Error{Code: "invalid_scope", Description: "a requested scope is not held by both the subject token and the client", Status: http.StatusBadRequest}
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " "), nil
}
