package authority_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/authority/admin"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/users"
)

// TestAdminMount: the admin API is where Config.Admin mounts it and
// nowhere else. Without Config.Admin /admin is a plain 404 (a server
// embedded without it has no admin surface); with it, the main handler
// answers /admin with the bearer challenge, unless SeparateAdmin moves it
// to AdminHandler alone.
func TestAdminMount(t *testing.T) {
	ctx := t.Context()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	km, err := keys.Open(ctx, keys.Options{Store: st, KEK: bytes.Repeat([]byte{3}, keys.KEKSize), Algorithms: []string{"EdDSA"}, MaxTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	get := func(h http.Handler) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/admin/clients", nil))
		return w.Code, w.Header().Get(echo.HeaderWWWAuthenticate)
	}
	for _, tc := range []struct {
		name            string
		mount           func(*authority.Server, *echo.Echo)
		separate        bool
		main, adminCode int
	}{
		{name: "not mounted", main: http.StatusNotFound},
		{name: "mounted", mount: admin.Routes, main: http.StatusUnauthorized},
		{name: "not mounted, separate", separate: true, main: http.StatusNotFound, adminCode: http.StatusNotFound},
		{name: "mounted, separate", mount: admin.Routes, separate: true, main: http.StatusNotFound, adminCode: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := authority.New(ctx, authority.Config{Admin: tc.mount, SeparateAdmin: tc.separate, Issuer: "https://issuer.test", Store: st,
				JWKS: jwksdoc.NewHandler(km, time.Minute, nil), Signer: km, KeySet: km, Algorithms: []string{"EdDSA"},
				Password: users.PasswordParams{Memory: 64, Time: 1, Threads: 1}})
			if err != nil {
				t.Fatal(err)
			}
			check := func(where string, h http.Handler, want int) {
				t.Helper()
				code, challenge := get(h)
				if code != want {
					t.Errorf("%s: GET /admin/clients = %d, want %d", where, code, want)
				}
				if want == http.StatusUnauthorized && challenge != `Bearer realm="signet-admin"` {
					t.Errorf("%s: WWW-Authenticate = %q, want the admin realm", where, challenge)
				}
			}
			check("main handler", srv, tc.main)
			if tc.separate {
				check("admin handler", srv.AdminHandler(), tc.adminCode)
			}
		})
	}
}
