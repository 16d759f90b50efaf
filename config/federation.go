package config

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/federation"
)

// Federation is the federation: section: the external issuers whose
// tokens a client may authenticate with instead of a secret
// (docs/workload-identity.md).
type Federation struct {
	Issuers []FederationIssuer `yaml:"issuers"`

	parsed []federation.Issuer // filled in by Validate
}

// FederationIssuer is one trusted issuer and its policy.
type FederationIssuer struct {
	Issuer           string            `yaml:"issuer"`
	JWKSFile         string            `yaml:"jwks_file"`
	Algorithms       []string          `yaml:"algorithms"`
	Audiences        []string          `yaml:"audiences"`
	MaxTokenLifetime string            `yaml:"max_token_lifetime"`
	AllowReuse       bool              `yaml:"allow_reuse"`
	Claims           map[string]string `yaml:"claims"`
}

// validateFederation checks the federation: section; bad reports a
// field's problem.
func (c *Config) validateFederation(bad func(field, format string, args ...any)) {
	c.Federation.parsed = nil
	seen := map[string]bool{}
	for i, fi := range c.Federation.Issuers {
		f := func(name string) string { return fmt.Sprintf("federation.issuers[%d].%s", i, name) }
		is := federation.Issuer{Issuer: fi.Issuer, Algorithms: fi.Algorithms, Audiences: fi.Audiences, AllowReuse: fi.AllowReuse, Claims: fi.Claims}
		switch {
		case fi.Issuer == "":
			bad(f("issuer"), "empty: set the iss of the tokens, such as https://kubernetes.default.svc.cluster.local (kubectl get --raw /.well-known/openid-configuration shows it)")
		case seen[fi.Issuer]:
			bad(f("issuer"), "%q is declared twice: one entry per issuer", fi.Issuer)
		}
		seen[fi.Issuer] = true
		if fi.JWKSFile != "" {
			b, err := os.ReadFile(fi.JWKSFile)
			if err != nil {
				bad(f("jwks_file"), "%v: give the path of the issuer's JWK Set (kubectl get --raw /openid/v1/jwks > cluster-jwks.json)", err)
			} else if is.Keys, err = clients.ParsePublicKeys(b); err != nil {
				bad(f("jwks_file"), "%s: %v", fi.JWKSFile, err)
			}
		} else if u, err := url.Parse(fi.Issuer); fi.Issuer != "" && (err != nil || u.Scheme != "https" && !(u.Scheme == "http" && c.Outbound.parsed.AllowLoopback) || u.Host == "") {
			bad(f("issuer"), "%q: keys are found through discovery, which needs an https issuer URL; set jwks_file for an issuer Signet cannot reach (a SPIFFE trust domain)", fi.Issuer)
		}
		for _, a := range fi.Algorithms {
			if !clientauth.AsymmetricAlg(a) {
				bad(f("algorithms"), "%q: only asymmetric algorithms (%s); none and HS* are never accepted", a, clients.AssertionAlgorithms())
			}
		}
		if fi.MaxTokenLifetime != "" {
			d, err := time.ParseDuration(fi.MaxTokenLifetime)
			if err != nil || d < time.Second || d > federation.MaxMaxLifetime {
				bad(f("max_token_lifetime"), "%q: expected a duration between 1s and 24h, such as 1h (a projected token's expirationSeconds)", fi.MaxTokenLifetime)
			}
			is.MaxLifetime = d
		}
		for _, src := range slices.Sorted(maps.Keys(fi.Claims)) {
			if p := federation.MappedClaimProblem(src, fi.Claims[src]); p != "" {
				bad(f("claims"), "%s", p)
			}
		}
		c.Federation.parsed = append(c.Federation.parsed, is)
	}
}

// FederationIssuers are the trusted issuers Validate read, for
// federation.Config; nil when none is declared.
func (c *Config) FederationIssuers() []federation.Issuer { return c.Federation.parsed }
