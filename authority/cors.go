package authority

import "github.com/signet-auth/signet/authority/cors"

// What a page on another origin may send to the endpoints it calls itself
// (package cors). Introspection and device authorization are for servers
// and devices, not pages, and answer no preflight.
var (
	// clientCORS: the token and revocation endpoints. Cookies go with a
	// SPA's refresh, so the answer names the page's origin, and only when
	// it is a web origin of the public client (allowBrowserOrigin).
	clientCORS = cors.Policy{Methods: "POST", Headers: "Authorization, Content-Type, DPoP",
		Expose: "DPoP-Nonce, WWW-Authenticate", Credentials: true}
	// userinfoCORS: a bearer (or DPoP) token in a header, no cookies.
	userinfoCORS = cors.Policy{Methods: "GET, POST", Headers: "*, Authorization, DPoP", Expose: "DPoP-Nonce, WWW-Authenticate"}
	// metadataCORS: discovery and the revocation feed, public documents.
	metadataCORS = cors.Public("GET, HEAD")
)
