package config

import (
	"fmt"
	"slices"
)

// The configuration of key custody and of the signed key set export: kept in
// one file of its own so that it moves as one piece into the config package.

// Custody is keys.custody: where new keys of each algorithm are
// generated (docs/key-custody.md). Empty: every key sealed in the store.
type Custody struct {
	PKCS11 PKCS11 `yaml:"pkcs11"`
}

type PKCS11 struct {
	// Algorithms whose new keys are generated in the token.
	Algorithms []string `yaml:"algorithms"`
	Module     string   `yaml:"module"`
	TokenLabel string   `yaml:"token_label"`
	// PINFile holds the user PIN; SIGNET_PKCS11_PIN overrides it.
	PINFile string `yaml:"pin_file"`
}

var pkcs11Algorithms = []string{"RS256", "PS256", "ES256", "ES384", "ES512"}

func (c *Custody) validate(live []string) []error {
	p := c.PKCS11
	if len(p.Algorithms) == 0 {
		if p.Module != "" || p.TokenLabel != "" {
			return []error{fmt.Errorf("keys.custody.pkcs11.algorithms: empty: list the algorithms whose keys the token holds, such as [RS256, ES256]")}
		}
		return nil
	}
	var errs []error
	for _, a := range p.Algorithms {
		switch {
		case !slices.Contains(pkcs11Algorithms, a):
			errs = append(errs, fmt.Errorf("keys.custody.pkcs11.algorithms: %q: a PKCS#11 token can hold %v", a, pkcs11Algorithms))
		case !slices.Contains(live, a):
			errs = append(errs, fmt.Errorf("keys.custody.pkcs11.algorithms: %q is not in keys.algorithms %v: add it there or remove it here", a, live))
		}
	}
	if p.Module == "" {
		errs = append(errs, fmt.Errorf("keys.custody.pkcs11.module: empty: the path of the PKCS#11 library, such as /usr/lib/softhsm/libsofthsm2.so"))
	}
	if p.TokenLabel == "" {
		errs = append(errs, fmt.Errorf("keys.custody.pkcs11.token_label: empty: the label of the token that holds the keys"))
	}
	return errs
}

// JWKSExport is jwks.export (docs/jwks-export.md).
type JWKSExport struct {
	File string `yaml:"file"`
	TTL  string `yaml:"ttl"`
}
