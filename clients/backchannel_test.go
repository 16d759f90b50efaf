package clients_test

import (
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// TestRegistry_BackchannelLogout: backchannel_logout_uri is https, or http
// on loopback for development, without fragment or user information;
// session_required needs a URI; Update sets and clears both.
func TestRegistry_BackchannelLogout(t *testing.T) {
	reg := clients.New(newStore(t), clients.Options{Algorithms: []string{"ES256"}})
	base := func(id, uri string, required bool) clients.Client {
		return clients.Client{ID: id, GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"openid"}, Audiences: []string{"api"},
			RedirectURIs: []string{"https://app.example/cb"}, BackchannelLogoutURI: uri, BackchannelLogoutSessionRequired: required}
	}
	for i, tc := range []struct {
		uri      string
		required bool
		want     string // "" accepted
	}{
		{"https://app.example/backchannel", true, ""},
		{"https://app.example:8443/bc?tenant=1", false, ""},
		{"http://127.0.0.1:9000/bc", true, ""},
		{"http://[::1]/bc", false, ""},
		{"http://app.example/bc", false, "backchannel_logout_uri: 'http://app.example/bc' http is only for loopback"},
		{"https://app.example/bc#frag", false, "must not have a fragment"},
		{"https://user:pw@app.example/bc", false, "must not have user information"},
		{"/bc", false, "must be an absolute URI"},
		{"javascript:alert(1)", false, "scheme javascript is not allowed"},
		{"com.example.app:/bc", false, "private-use scheme is only for native"},
		{"https://app.example:0/bc", false, "port from 1 to 65535"},
		{"", true, "backchannel_logout_session_required: needs backchannel_logout_uri"},
	} {
		cl, _, err := reg.Create(t.Context(), base("c"+string(rune('a'+i)), tc.uri, tc.required))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.uri, err)
		case tc.want == "" && (cl.BackchannelLogoutURI != tc.uri || cl.BackchannelLogoutSessionRequired != tc.required):
			t.Errorf("%q: stored %+v", tc.uri, cl)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want %q", tc.uri, err, tc.want)
		}
	}
	uri, on, off, empty := "https://rp.example/logout", true, false, ""
	cl, err := reg.Update(t.Context(), "ca", clients.Patch{BackchannelLogoutURI: &uri, BackchannelLogoutSessionRequired: &off})
	if err != nil || cl.BackchannelLogoutURI != uri || cl.BackchannelLogoutSessionRequired {
		t.Fatalf("update: %+v, %v", cl, err)
	}
	if _, err := reg.Update(t.Context(), "ca", clients.Patch{BackchannelLogoutURI: &empty, BackchannelLogoutSessionRequired: &on}); err == nil {
		t.Error("clearing the URI while session_required stays on was accepted")
	}
	if cl, err = reg.Update(t.Context(), "ca", clients.Patch{BackchannelLogoutURI: &empty, BackchannelLogoutSessionRequired: &off}); err != nil || cl.BackchannelLogoutURI != "" {
		t.Errorf("clear: %+v, %v", cl, err)
	}
}
