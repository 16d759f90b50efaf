package authority

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/sessions"
)

// metadata is the RFC 8414 authorization server metadata document, which
// is also the OpenID Connect discovery document (OIDC Discovery §3): the
// same bytes are served at both well-known names. The authorization,
// userinfo and end-session endpoints are the hosted login's (package
// login); only the code response type exists (no implicit or hybrid flow).
type metadata struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationAuthSigningAlgs         []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionAuthSigningAlgs      []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	// RevocationFeed is where verifiers read the denylist (jwks.RevocationFeed).
	RevocationFeed                   string   `json:"revocation_feed"`
	ScopesSupported                  []string `json:"scopes_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`

	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint"`
	EndSessionEndpoint                         string   `json:"end_session_endpoint"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	SubjectTypesSupported                      []string `json:"subject_types_supported"`
	ClaimsSupported                            []string `json:"claims_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	PromptValuesSupported                      []string `json:"prompt_values_supported"`
	ACRValuesSupported                         []string `json:"acr_values_supported"`
	ClaimsParameterSupported                   bool     `json:"claims_parameter_supported"`
	RequestParameterSupported                  bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported               bool     `json:"request_uri_parameter_supported"`
	UserinfoSigningAlgValuesSupported          []string `json:"userinfo_signing_alg_values_supported,omitempty"`
	// DPoPSigningAlgValuesSupported lists the DPoP proof algorithms
	// (RFC 9449 §5.1); absent when DPoP is off.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	// RFC 7591 registration and client ID metadata documents (Config.Registration).
	RegistrationEndpoint              string `json:"registration_endpoint,omitempty"`
	ClientIDMetadataDocumentSupported bool   `json:"client_id_metadata_document_supported,omitempty"`
	// Back-channel logout (package backchannel) delivers sid and sub.
	BackchannelLogoutSupported        bool `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported bool `json:"backchannel_logout_session_supported"`
}

// oidcScopes are the OpenID Connect scopes every Signet advertises.
var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

func buildMetadata(cfg Config) ([]byte, error) {
	base := strings.TrimSuffix(cfg.Issuer, "/")
	scopes := append([]string{}, oidcScopes...)
	scopes = append(scopes, AdminScope)
	for _, sc := range cfg.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	var dpopAlgs []string
	if cfg.DPoP != nil {
		dpopAlgs = strings.Fields(cfg.DPoP.Algorithms())
	}
	return json.Marshal(metadata{
		Issuer:                            cfg.Issuer,
		TokenEndpoint:                     base + "/oauth2/token",
		JWKSURI:                           base + "/.well-known/jwks.json",
		GrantTypesSupported:               grantTypes(cfg),
		ResponseTypesSupported:            []string{"code"},
		TokenEndpointAuthMethodsSupported: append(clientauth.Methods(), clients.AuthNone),
		TokenEndpointAuthSigningAlgs:      clientauth.SigningAlgs(),
		DeviceAuthorizationEndpoint:       base + "/oauth2/device_authorization",
		RevocationEndpoint:                base + "/oauth2/revoke",
		RevocationAuthMethodsSupported:    clientauth.Methods(),
		RevocationAuthSigningAlgs:         clientauth.SigningAlgs(),
		IntrospectionEndpoint:             base + "/oauth2/introspect",
		IntrospectionAuthMethodsSupported: clientauth.Methods(),
		IntrospectionAuthSigningAlgs:      clientauth.SigningAlgs(),
		RevocationFeed:                    base + "/oauth2/revocations",
		ScopesSupported:                   scopes,
		IDTokenSigningAlgValuesSupported:  idTokenAlgs(cfg.Algorithms),

		AuthorizationEndpoint:         base + "/oauth2/authorize",
		UserinfoEndpoint:              base + "/oauth2/userinfo",
		EndSessionEndpoint:            base + "/oauth2/logout",
		ResponseModesSupported:        []string{"query"},
		SubjectTypesSupported:         []string{"public"},
		CodeChallengeMethodsSupported: []string{"S256"},
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid", "acr", "amr",
			"name", "preferred_username", "email", "email_verified", "updated_at"},
		AuthorizationResponseIssParameterSupported: true,
		PromptValuesSupported:                      []string{"none", "login", "consent"},
		ACRValuesSupported:                         []string{sessions.ACRPassword, sessions.ACRMFA, sessions.ACRUpstream},
		DPoPSigningAlgValuesSupported:              dpopAlgs,
		RegistrationEndpoint:                       cfg.Registration.Endpoint,
		ClientIDMetadataDocumentSupported:          cfg.Registration.MetadataDocuments,
		BackchannelLogoutSupported:                 true,
		BackchannelLogoutSessionSupported:          true,
	})
}

// discovery serves the precomputed metadata for both well-known names.
func (s *Server) discovery(c echo.Context) error {
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "public, max-age=3600")
	metadataCORS.Answer(c)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.metadata)
}

// idTokenAlgs lists the live algorithms with RS256 first (OIDC Core
// §15.1: RS256 is what every relying party supports).
func idTokenAlgs(algs []string) []string {
	out := []string{}
	if slices.Contains(algs, "RS256") {
		out = append(out, "RS256")
	}
	for _, a := range algs {
		if a != "RS256" {
			out = append(out, a)
		}
	}
	return out
}
