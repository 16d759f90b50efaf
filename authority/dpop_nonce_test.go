package authority_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/jwks"
)

// TestDPoP_Nonces: with server nonces (dpop.nonce), a proof without the
// current nonce is answered use_dpop_nonce with the nonce in a DPoP-Nonce
// header (RFC 9449 §8) at the token endpoint, and with a 401 DPoP
// challenge and the header at Signet's protected endpoints (§9); a proof
// carrying it is accepted, and the answer names the nonce for the next
// (§8.2); a nonce two periods old is refused again.
func TestDPoP_Nonces(t *testing.T) {
	key := bytes.Repeat([]byte{3}, 32)
	e := newEnv(t, envOptions{algs: []string{"ES256"}, dpop: func(now func() time.Time) *jwks.DPoPChecker {
		n, err := jwks.NewKeyedNonces(key, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		c, err := jwks.NewDPoPChecker(jwks.WithDPoPClock(now), jwks.WithDPoPNonces(n))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}})
	client := newDPoPClient(t, e.clock.Now)
	tokenURL := e.issuer + "/oauth2/token"
	withNonce := func(n string) func(cl, _ map[string]any) { return func(cl, _ map[string]any) { cl["nonce"] = n } }
	admin := url.Values{"scope": {authority.AdminScope}, "audience": {authority.AdminAudience}}

	status, hdr, body := e.dpopTokenRequest(e.adminID, e.adminSecret, admin, client.proof(t, "POST", tokenURL, "", nil))
	nonce := hdr.Get("DPoP-Nonce")
	if status != http.StatusBadRequest || body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("proof without a nonce = %d %v, DPoP-Nonce %q", status, body, nonce)
	}
	status, hdr, body = e.dpopTokenRequest(e.adminID, e.adminSecret, admin, client.proof(t, "POST", tokenURL, "", withNonce(nonce)))
	if status != http.StatusOK || body["token_type"] != "DPoP" || hdr.Get("DPoP-Nonce") != nonce {
		t.Fatalf("proof with the nonce = %d %v, DPoP-Nonce %q (the nonce for the next proof)", status, body, hdr.Get("DPoP-Nonce"))
	}
	tok := body["access_token"].(string)

	keysURL := e.issuer + "/admin/keys"
	get := func(proof string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, keysURL, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		return e.do(req)
	}
	status, hdr, body = get(client.proof(t, "GET", keysURL, tok, nil))
	if status != http.StatusUnauthorized || body["error"] != "use_dpop_nonce" || hdr.Get("DPoP-Nonce") != nonce ||
		!strings.HasPrefix(hdr.Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) {
		t.Fatalf("admin API, proof without a nonce = %d %v, DPoP-Nonce %q, WWW-Authenticate %q", status, body, hdr.Get("DPoP-Nonce"), hdr.Get("WWW-Authenticate"))
	}
	if status, _, body := get(client.proof(t, "GET", keysURL, tok, withNonce(nonce))); status != http.StatusOK {
		t.Fatalf("admin API, proof with the nonce = %d %v", status, body)
	}

	e.clock.Add(2 * time.Minute)
	status, hdr, body = e.dpopTokenRequest(e.adminID, e.adminSecret, admin, client.proof(t, "POST", tokenURL, "", withNonce(nonce)))
	if status != http.StatusBadRequest || body["error"] != "use_dpop_nonce" || hdr.Get("DPoP-Nonce") == nonce || hdr.Get("DPoP-Nonce") == "" {
		t.Fatalf("stale nonce = %d %v, DPoP-Nonce %q", status, body, hdr.Get("DPoP-Nonce"))
	}
}
