package clients

// validateBackchannel checks the back-channel logout fields (OpenID
// Connect Back-Channel Logout 1.0 §2.2): the URI is absolute, without a
// fragment or user information, https or http on a loopback host (for
// development, as redirect URIs), and session_required means nothing
// without it. Where Signet may actually connect (no private or metadata
// address, no redirect) is the outbound fetcher's to decide at dial time.
func validateBackchannel(cl *Client, bad func(field, problem string)) {
	if cl.BackchannelLogoutURI == "" {
		if cl.BackchannelLogoutSessionRequired {
			bad("backchannel_logout_session_required", "needs backchannel_logout_uri")
		}
		return
	}
	if p := validateRedirect(cl.BackchannelLogoutURI, false); p != "" {
		bad("backchannel_logout_uri", QuoteValue(cl.BackchannelLogoutURI)+" "+p)
	}
}
