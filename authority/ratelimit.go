package authority

import (
	"github.com/signet-auth/signet/clientauth"
	"github.com/signet-auth/signet/ratelimit"
)

// RateLimit bounds failed client authentications; clientauth applies it.
type RateLimit = clientauth.RateLimit

// LoginRateLimit bounds failed password logins; ratelimit.LoginLimiter
// applies it.
type LoginRateLimit = ratelimit.Login
