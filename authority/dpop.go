package authority

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/jwks"
)

// DPoP (RFC 9449) at Signet's own endpoints. The proof checker is the one
// services use (jwks.DPoPChecker, from the jwks module), configured by
// cmd/signet with a replay cache in the store, so a proof accepted by one
// replica is refused by every other.

// confirmation is the cnf claim of a DPoP-bound access token (RFC 9449
// §6.1): the RFC 7638 thumbprint of the client's proof key.
type confirmation struct {
	JKT string `json:"jkt"`
}

// tokenDPoP checks the DPoP proof of a token request, when there is one,
// and returns its key's thumbprint ("" without a proof: a bearer token is
// issued). A request with a proof that does not check is refused with
// invalid_dpop_proof (RFC 9449 §5), never answered with a bearer token.
func (s *Server) tokenDPoP(c echo.Context) (string, error) {
	r := c.Request()
	proofs := r.Header.Values("DPoP")
	if s.cfg.DPoP == nil || len(proofs) == 0 {
		return "", nil
	}
	if len(proofs) > 1 {
		return "", &Error{Code: "invalid_dpop_proof", Description: "send one DPoP header", Status: http.StatusBadRequest}
	}
	p, err := s.cfg.DPoP.Check(r.Context(), jwks.DPoPRequest{
		Proof: proofs[0], Method: r.Method, URL: strings.TrimSuffix(s.cfg.Issuer, "/") + "/oauth2/token",
	})
	if err != nil {
		return "", s.dpopError(err, http.StatusBadRequest, false)
	}
	if n := s.cfg.DPoP.Nonce(); n != "" { // the nonce for the next proof (RFC 9449 §8.2)
		c.Response().Header().Set("DPoP-Nonce", n)
	}
	return p.Thumbprint, nil
}

// dpopError is the answer to a refused proof: use_dpop_nonce (handleError
// adds the DPoP-Nonce header), or invalid_dpop_proof (a store failure of
// the replay cache is a 500: the proof may be good). challenge adds the
// WWW-Authenticate DPoP challenge of protected resources (RFC 9449 §7.1).
func (s *Server) dpopError(err error, status int, challenge bool) error {
	code, desc := "invalid_dpop_proof", "the DPoP proof is invalid"
	switch {
	case errors.Is(err, jwks.ErrDPoPNonce):
		code, desc = "use_dpop_nonce", "a nonce is required in the DPoP proof"
	case errors.Is(err, jwks.ErrDPoPReplay), errors.Is(err, jwks.ErrDPoPBinding):
	case errors.Is(err, jwks.ErrDPoPReplayCacheFailed):
		return ServerError(err) // the store, not the proof: the client may retry
	}
	e := &Error{Code: code, Description: desc, Status: status, Err: err}
	if challenge {
		e.bearer = `DPoP error="` + code + `", algs="` + s.cfg.DPoP.Algorithms() + `"`
	}
	return e
}

// checkResourceProof checks the DPoP proof of a request to a protected
// endpoint of Signet (userinfo, the admin API) that presented tok with the
// DPoP scheme: one proof, made for this method and URL, for tok (ath),
// with the key tok is bound to.
func (s *Server) checkResourceProof(r *http.Request, tok string, at *accessClaims) error {
	invalid := &Error{Code: "invalid_token", Description: "the token is not bound to a DPoP key", Status: http.StatusUnauthorized,
		bearer: `DPoP error="invalid_token", algs="` + s.cfg.DPoP.Algorithms() + `"`}
	if at.Cnf == nil || at.Cnf.JKT == "" {
		return invalid
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return s.dpopError(errors.New("not one DPoP header"), http.StatusUnauthorized, true)
	}
	_, err := s.cfg.DPoP.Check(r.Context(), jwks.DPoPRequest{
		Proof: proofs[0], Method: r.Method, URL: s.resourceURL(r), AccessToken: tok, BoundTo: at.Cnf.JKT,
	})
	if err != nil {
		return s.dpopError(err, http.StatusUnauthorized, true)
	}
	return nil
}

// resourceURL is the public URL of a request to Signet: the issuer's
// origin and path prefix, then the request path (a proxy may or may not
// have stripped the issuer's path prefix).
func (s *Server) resourceURL(r *http.Request) string {
	base := strings.TrimSuffix(s.cfg.Issuer, "/")
	path := r.URL.EscapedPath()
	if u, err := url.Parse(base); err == nil && u.Path != "" && strings.HasPrefix(path, u.Path+"/") {
		path = strings.TrimPrefix(path, u.Path)
	}
	return base + path
}

// dpopScheme reports whether an Authorization scheme is DPoP and this
// server takes DPoP.
func (s *Server) dpopScheme(scheme string) bool {
	return s.cfg.DPoP != nil && strings.EqualFold(scheme, "DPoP")
}
