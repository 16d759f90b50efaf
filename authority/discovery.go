package authority

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// metadata is the RFC 8414 authorization server metadata document.
//
// Signet has no authorization endpoint (client_credentials, password and
// refresh_token only), so
// authorization_endpoint is absent (RFC 8414 §2: required only when a grant
// uses it) and response_types_supported, which §2 requires, is the empty
// list: there is no response type to support, and advertising "token" or
// "code" would invite clients to use endpoints that do not exist.
//
// id_token_signing_alg_values_supported is an OpenID Connect field; Signet
// issues no ID tokens, but verifiers configured from openid-configuration
// (go-oidc and others) read it to learn which algorithms the issuer signs
// with, and here it lists exactly the access-token algorithms.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	// RevocationFeed is where verifiers read the denylist (jwks.RevocationFeed).
	RevocationFeed                   string   `json:"revocation_feed"`
	ScopesSupported                  []string `json:"scopes_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
}

func buildMetadata(cfg Config) ([]byte, error) {
	base := strings.TrimSuffix(cfg.Issuer, "/")
	scopes := []string{AdminScope}
	for _, sc := range cfg.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return json.Marshal(metadata{
		Issuer:                            cfg.Issuer,
		TokenEndpoint:                     base + "/oauth2/token",
		JWKSURI:                           base + "/.well-known/jwks.json",
		GrantTypesSupported:               supportedGrants,
		ResponseTypesSupported:            []string{},
		TokenEndpointAuthMethodsSupported: []string{AuthSecretBasic, AuthSecretPost},
		RevocationEndpoint:                base + "/oauth2/revoke",
		RevocationAuthMethodsSupported:    []string{AuthSecretBasic, AuthSecretPost},
		IntrospectionEndpoint:             base + "/oauth2/introspect",
		IntrospectionAuthMethodsSupported: []string{AuthSecretBasic, AuthSecretPost},
		RevocationFeed:                    base + "/oauth2/revocations",
		ScopesSupported:                   scopes,
		IDTokenSigningAlgValuesSupported:  cfg.Algorithms,
	})
}

// discovery serves the precomputed metadata for both well-known names.
func (s *Server) discovery(c echo.Context) error {
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "public, max-age=3600")
	h.Set(echo.HeaderAccessControlAllowOrigin, "*")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.metadata)
}
