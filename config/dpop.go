package config

import "time"

// DPoP is the dpop: section: DPoP (RFC 9449) at Signet's own endpoints.
type DPoP struct {
	// Nonce makes every DPoP proof carry a nonce Signet issued (RFC 9449
	// section 8): a proof made in advance, by a client whose key was
	// stolen for a moment, is useless. A proof without one is answered
	// use_dpop_nonce with the nonce in a DPoP-Nonce header.
	Nonce bool `yaml:"nonce"`
	// NoncePeriod is how long a nonce is current; the one before it is
	// still taken, so a nonce lives between one and two periods.
	NoncePeriod string `yaml:"nonce_period"`

	// Period is NoncePeriod parsed by Validate.
	Period time.Duration `yaml:"-"`
}

func defaultDPoP() DPoP { return DPoP{NoncePeriod: "5m"} }

// validateDPoP checks the dpop: section.
func (c *Config) validateDPoP(bad func(field, format string, args ...any)) {
	d, err := time.ParseDuration(c.DPoP.NoncePeriod)
	switch {
	case err != nil:
		bad("dpop.nonce_period", "%q: expected a duration such as 5m", c.DPoP.NoncePeriod)
	case d < 10*time.Second || d > time.Hour:
		bad("dpop.nonce_period", "%s: expected between 10s and 1h, such as 5m", d)
	default:
		c.DPoP.Period = d
	}
}
