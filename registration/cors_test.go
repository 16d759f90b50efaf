package registration_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/signet-auth/signet/registration"
)

// TestRegistration_BrowserClients: an MCP client running in a web page
// registers from the page, then reads, updates and deletes its
// registration with the registration access token (RFC 7592). Each of
// those requests is preflighted (a JSON body or an Authorization header),
// so each path answers the preflight for any origin, and every answer,
// errors included, is readable by the page. Before, the preflight was
// answered 405 and a browser could not register at all.
func TestRegistration_BrowserClients(t *testing.T) {
	e := newEnv(t, envOptions{})
	const page = "http://127.0.0.1:6274"
	preflight := func(path, method string) http.Header {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, e.issuer+path, nil)
		req.Header.Set("Origin", page)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("OPTIONS %s: %d, want 204", path, resp.StatusCode)
		}
		return resp.Header
	}
	check := func(what string, h http.Header) {
		t.Helper()
		if h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want *", what, h.Get("Access-Control-Allow-Origin"))
		}
	}
	h := preflight(registration.Path, "POST")
	check("preflight POST", h)
	if !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight does not allow Authorization (an initial access token): %v", h)
	}

	reg := e.register(publicClient())
	if reg.status != http.StatusCreated {
		t.Fatalf("register: %d %s", reg.status, reg.raw)
	}
	check("registration", reg.header)
	uri := reg.str("registration_client_uri")
	path := strings.TrimPrefix(uri, e.issuer)
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		h := preflight(path, m)
		check("preflight "+m, h)
		if !strings.Contains(h.Get("Access-Control-Allow-Methods"), m) {
			t.Errorf("preflight of %s does not allow %s: %v", path, m, h)
		}
	}
	check("read", e.call(http.MethodGet, uri, reg.str("registration_access_token"), nil).header)
	bad := e.call(http.MethodGet, uri, "wrong-token", nil)
	if bad.status != http.StatusUnauthorized {
		t.Fatalf("read with a wrong token: %d %s", bad.status, bad.raw)
	}
	check("refused read", bad.header)
	md := publicClient()
	md["redirect_uris"] = []string{"ftp://nowhere"}
	refused := e.register(md)
	if refused.status != http.StatusBadRequest {
		t.Fatalf("bad redirect: %d %s", refused.status, refused.raw)
	}
	check("refused registration", refused.header)
	check("delete", e.call(http.MethodDelete, uri, reg.str("registration_access_token"), nil).header)
}
