package main

import (
	"encoding/json"
	"flag"
	"time"

	"github.com/signet-auth/signet/clients"
)

// clientFlags are the flags of `signet clients create` and `update` that
// describe a client. Create reads them all into a clients.Client; update
// sends only the flags given, as a clients.Patch (the body of
// PATCH /admin/clients/{id}), so that every field the admin API can change
// has its flag, with the same name and meaning as at create
// (TestClientsUpdate_EveryPatchField holds the two together).
type clientFlags struct {
	spec                                                   clients.Client
	grants, scopes, defScopes, auds, methods, exchangeAuds listFlag
	redirects, logoutRedirects                             listFlag
	claims                                                 claimFlag
	alg                                                    string
	requirePKCE                                            bool
	ttl, refreshIdle, refreshAbsolute, refreshGrace        time.Duration
	keys                                                   keyFlags
	names                                                  map[string]bool // the flags register added
}

// register adds the flags to fs. Update's lists replace the client's list
// and ” empties it; create's have defaults.
func (f *clientFlags) register(fs *flag.FlagSet, update bool) {
	before := map[string]bool{}
	fs.VisitAll(func(fl *flag.Flag) { before[fl.Name] = true })
	defer func() {
		f.names = map[string]bool{}
		fs.VisitAll(func(fl *flag.Flag) {
			if !before[fl.Name] {
				f.names[fl.Name] = true
			}
		})
	}()
	f.claims = claimFlag{}
	f.requirePKCE = true
	s := &f.spec
	list := func(v *listFlag, name, usage string) {
		if update {
			usage += " (replaces the list; '' empties it)"
		}
		fs.Var(v, name, usage)
	}
	list(&f.grants, "grant", "allowed grant type, repeatable: authorization_code (browser login), urn:ietf:params:oauth:grant-type:device_code (terminals, RFC 8628), client_credentials, refresh_token (default client_credentials)")
	list(&f.scopes, "scope", `allowed scopes, space-separated or repeated ("a b")`)
	list(&f.defScopes, "default-scope", "scopes granted when none is asked (default: all allowed scopes)")
	list(&f.auds, "audience", "allowed audience, repeatable; the first is the default (required at create)")
	list(&f.exchangeAuds, "exchange-audience", "token exchange (grant "+clients.GrantTokenExchange+"): an audience the client may exchange tokens into, repeatable")
	list(&f.methods, "auth-method", "allowed client authentication, repeatable: client_secret_basic, client_secret_post, private_key_jwt (default both secret methods; private_key_jwt when --jwks-file, --jwks-uri or --federated is given)")
	list(&f.redirects, "redirect-uri", "browser login: a redirect URI, repeatable, compared exactly")
	list(&f.logoutRedirects, "post-logout-redirect-uri", "browser login: where RP-initiated logout may return, repeatable, compared exactly")
	fs.BoolVar(&s.DPoPBoundAccessTokens, "dpop-bound", false, "refuse the client's token requests without a DPoP proof (RFC 9449 dpop_bound_access_tokens; --dpop-bound=false lifts it)")
	fs.StringVar(&s.DefaultAudience, "default-audience", "", "audience used when none is asked (default: the first)")
	fs.StringVar(&f.alg, "alg", "", "signing algorithm, one of the live ones (default RS256 when live)")
	fs.DurationVar(&f.ttl, "ttl", 0, "access-token lifetime (default tokens.default_ttl)")
	f.keys.register(fs)
	fs.Var(f.claims, "claim", "extra claim NAME=VALUE for every token, repeatable (VALUE is JSON or a string; on update the set replaces the client's, and '' removes them all)")
	fs.DurationVar(&f.refreshIdle, "refresh-idle", 0, "refresh session idle lifetime (default tokens.refresh.idle_ttl; can only shorten it)")
	fs.DurationVar(&f.refreshAbsolute, "refresh-absolute", 0, "refresh session absolute lifetime (default tokens.refresh.absolute_ttl; can only shorten it)")
	fs.DurationVar(&f.refreshGrace, "refresh-reuse-grace", 0, "how long the just-rotated refresh token may be retried without revoking the session (0 to 60s, default 0)")
	fs.BoolVar(&s.RefreshTokenCookie, "refresh-cookie", false, "deliver and accept refresh tokens in an HttpOnly Secure SameSite=Strict cookie")
	fs.BoolVar(&s.Introspect, "introspect", false, "allow the client to call /oauth2/introspect")
	fs.BoolVar(&s.FirstParty, "first-party", false, "your own application: users are not asked for consent")
	fs.StringVar(&s.ApplicationType, "application-type", "", "web (default) or native (may use http://127.0.0.1 on any port, RFC 8252)")
	fs.StringVar(&s.IDTokenSignedResponseAlg, "id-token-alg", "", "ID token signing algorithm (default RS256)")
	fs.StringVar(&s.ClientName, "name", "", "name shown to users on the consent page")
	fs.BoolVar(&s.RequireSecondFactor, "require-second-factor", false, "users sign in to this client with a second factor as well as their password (--require-second-factor=false to stop)")
	fs.BoolVar(&s.Disabled, "disabled", false, "the client gets no tokens and its tokens stop verifying at Signet (--disabled=false enables it again)")
	backchannelFlags(fs, s)
	fs.BoolVar(&f.requirePKCE, "require-pkce", true, "require PKCE (S256) for the authorization code flow (--require-pkce=false for a legacy confidential client)")
}

// client is the client create makes.
func (f *clientFlags) client() (clients.Client, error) {
	s := f.spec
	jwks, err := f.keys.jwks()
	if err != nil {
		return s, err
	}
	s.GrantTypes, s.Scopes, s.DefaultScopes, s.Audiences, s.AuthMethods = f.grants, f.scopes, f.defScopes, f.auds, f.methods
	s.ExchangeAudiences = f.exchangeAuds
	s.JWKS, s.JWKSURI, s.AssertionAlgs, s.Federated = jwks, f.keys.uri, f.keys.algs, f.keys.federated
	s.SigningAlg, s.AccessTokenTTL = f.alg, clients.Duration(f.ttl)
	s.RefreshIdleTTL, s.RefreshAbsoluteTTL, s.RefreshReuseGrace = clients.Duration(f.refreshIdle), clients.Duration(f.refreshAbsolute), clients.Duration(f.refreshGrace)
	if len(f.claims) > 0 {
		s.ExtraClaims = f.claims
	}
	s.RedirectURIs, s.PostLogoutRedirectURIs = f.redirects, f.logoutRedirects
	if !f.requirePKCE {
		s.RequirePKCE = &f.requirePKCE
	}
	return s, nil
}

// patch is what update sends: the fields of the flags given on the command
// line, and no other. A list flag given as ” sends an empty list (not
// null, which would leave the field as it is).
func (f *clientFlags) patch(fs *flag.FlagSet) (clients.Patch, error) {
	var p clients.Patch
	s, err := f.client()
	if err != nil {
		return p, err
	}
	nonNil := func(l []string) *[]string {
		if l == nil {
			l = []string{}
		}
		return &l
	}
	var unknown []string
	fs.Visit(func(fl *flag.Flag) {
		if !f.names[fl.Name] {
			return // --data-dir, --server, --json: not the client's
		}
		switch fl.Name {
		case "grant":
			p.GrantTypes = nonNil(s.GrantTypes)
		case "scope":
			p.Scopes = nonNil(s.Scopes)
		case "default-scope":
			p.DefaultScopes = nonNil(s.DefaultScopes)
		case "audience":
			p.Audiences = nonNil(s.Audiences)
		case "exchange-audience":
			p.ExchangeAudiences = nonNil(s.ExchangeAudiences)
		case "auth-method":
			p.AuthMethods = nonNil(s.AuthMethods)
		case "redirect-uri":
			p.RedirectURIs = nonNil(s.RedirectURIs)
		case "post-logout-redirect-uri":
			p.PostLogoutRedirectURIs = nonNil(s.PostLogoutRedirectURIs)
		case "auth-signing-alg":
			p.AssertionAlgs = nonNil(s.AssertionAlgs)
		case "dpop-bound":
			p.DPoPBoundAccessTokens = &s.DPoPBoundAccessTokens
		case "default-audience":
			p.DefaultAudience = &s.DefaultAudience
		case "alg":
			p.SigningAlg = &s.SigningAlg
		case "ttl":
			p.AccessTokenTTL = &s.AccessTokenTTL
		case "jwks-file":
			p.JWKS = &s.JWKS
		case "jwks-uri":
			p.JWKSURI = &s.JWKSURI
		case "federated":
			fed := s.Federated
			if fed == nil {
				fed = []clients.FederatedIdentity{}
			}
			p.Federated = &fed
		case "claim":
			m := map[string]json.RawMessage(f.claims)
			p.ExtraClaims = &m
		case "refresh-idle":
			p.RefreshIdleTTL = &s.RefreshIdleTTL
		case "refresh-absolute":
			p.RefreshAbsoluteTTL = &s.RefreshAbsoluteTTL
		case "refresh-reuse-grace":
			p.RefreshReuseGrace = &s.RefreshReuseGrace
		case "refresh-cookie":
			p.RefreshTokenCookie = &s.RefreshTokenCookie
		case "introspect":
			p.Introspect = &s.Introspect
		case "first-party":
			p.FirstParty = &s.FirstParty
		case "application-type":
			p.ApplicationType = &s.ApplicationType
		case "id-token-alg":
			p.IDTokenSignedResponseAlg = &s.IDTokenSignedResponseAlg
		case "name":
			p.ClientName = &s.ClientName
		case "require-second-factor":
			p.RequireSecondFactor = &s.RequireSecondFactor
		case "disabled":
			p.Disabled = &s.Disabled
		case "require-pkce":
			p.RequirePKCE = &f.requirePKCE
		case "backchannel-logout-uri":
			p.BackchannelLogoutURI = &s.BackchannelLogoutURI
		case "backchannel-logout-session-required":
			p.BackchannelLogoutSessionRequired = &s.BackchannelLogoutSessionRequired
		default:
			unknown = append(unknown, fl.Name)
		}
	})
	if len(unknown) > 0 {
		return p, usageError{"update cannot change --" + unknown[0]}
	}
	return p, nil
}
