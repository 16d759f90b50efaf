package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFederation_Errors: every problem of the federation: section names
// its field (with the issuer's index) and the fix, in one round; a
// misspelled field inside an issuer is reported, not ignored.
func TestFederation_Errors(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "cluster-jwks.json")
	if err := os.WriteFile(jwks, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "signet.yaml")
	yaml := `federation:
  issuers:
    - issuer: https://kubernetes.default.svc.cluster.local
      algorithms: [RS256, HS256, none]
      max_token_lifetime: 1y
      claims:
        kubernetes.io.namespace: scope
    - issuer: spiffe://trust.domain
    - issuer: spiffe://trust.domain
      jwk_file: /etc/signet/bundle.json
    - issuer: https://token.actions.githubusercontent.com
      jwks_file: ` + jwks + `
    - issuer: ""
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(Sources{File: path, Getenv: func(string) string { return "" }})
	if err == nil {
		t.Fatal("Load accepted a bad federation: section")
	}
	for _, want := range []string{
		`federation.issuers[0].algorithms: "HS256": only asymmetric`,
		`federation.issuers[0].algorithms: "none"`,
		`federation.issuers[0].max_token_lifetime: "1y"`,
		`federation.issuers[0].claims: claim "kubernetes.io.namespace" maps to "scope"`,
		`federation.issuers[1].issuer: "spiffe://trust.domain": keys are found through discovery`,
		`federation.issuers[2].issuer: "spiffe://trust.domain" is declared twice`,
		`unknown field "federation.issuers[2].jwk_file": did you mean "jwks_file"?`,
		`federation.issuers[3].jwks_file: ` + jwks,
		`federation.issuers[4].issuer: empty`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}

	// A good section parses into the federation's issuers.
	if err := os.WriteFile(jwks, []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml = "federation:\n  issuers:\n    - issuer: spiffe://trust.domain\n      jwks_file: " + jwks + "\n      max_token_lifetime: 10m\n      claims:\n        sub: workload\n" +
		"    - issuer: https://kubernetes.default.svc.cluster.local\n      allow_reuse: true\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Sources{File: path, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	is := c.FederationIssuers()
	if len(is) != 2 || len(is[0].Keys) != 1 || is[0].MaxLifetime.String() != "10m0s" || is[0].Claims["sub"] != "workload" || is[1].Keys != nil || !is[1].AllowReuse {
		t.Errorf("issuers = %+v", is)
	}
}
