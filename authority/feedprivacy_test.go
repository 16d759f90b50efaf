package authority_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/jwks"
)

// TestRevocationFeed_NamesNoSubject (issue 16, item 12): after users are
// logged out, disabled and deleted, the public feed's bytes contain none
// of their subject ids (nor usernames); it lists keyed hashes that a
// verifier given the key applies, and a verifier without it cannot (and
// says so in Stats).
func TestRevocationFeed_NamesNoSubject(t *testing.T) {
	e := newEnv(t, envOptions{})
	sec := e.userClient("app", nil)
	admin := e.adminToken()
	ids := map[string]string{}
	for _, name := range []string{"alice", "bob", "carol"} {
		ids[name] = e.createUser(name)
	}
	old, _ := e.login("app", sec, "alice", nil)
	e.clock.Add(time.Second)
	if s, _, b := e.admin(http.MethodPost, "/admin/users/"+ids["alice"]+"/logout", admin, nil); s != http.StatusOK {
		t.Fatalf("logout = %d %v", s, b)
	}
	if s, _, b := e.admin(http.MethodPatch, "/admin/users/"+ids["bob"], admin, map[string]any{"disabled": true}); s != http.StatusOK {
		t.Fatalf("disable = %d %v", s, b)
	}
	if s, _, b := e.admin(http.MethodDelete, "/admin/users/"+ids["carol"], admin, nil); s != http.StatusNoContent && s != http.StatusOK {
		t.Fatalf("delete = %d %v", s, b)
	}
	resp, err := http.Get(e.issuer + "/oauth2/revocations")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for name, id := range ids {
		if strings.Contains(string(body), id) || strings.Contains(string(body), name) {
			t.Errorf("the public feed names %s (%s):\n%s", name, id, body)
		}
		if !strings.Contains(string(body), authority.FeedSubjectHash(testFeedKey, id)) {
			t.Errorf("the feed lacks %s's keyed hash:\n%s", name, body)
		}
	}

	withKey := e.verifierOf(t)
	if _, err := withKey.Verify(t.Context(), old); !errors.Is(err, jwks.ErrRevoked) {
		t.Errorf("verifier with the key on alice's old token: %v, want ErrRevoked", err)
	}
	noKey, err := jwks.NewVerifier(t.Context(), e.issuer, jwks.WithInsecureHTTP(), jwks.WithDenylist(true), jwks.WithClock(e.clock.Now), jwks.WithAudience(testAud))
	if err != nil {
		t.Fatal(err)
	}
	defer noKey.Close()
	if st := noKey.Stats(); !st.SubjectKeyMissing || st.SubjectCutoffs != 3 {
		t.Errorf("verifier without the key: Stats = %+v, want SubjectKeyMissing and 3 cutoffs", st)
	}
	if withKey.Stats().SubjectKeyMissing {
		t.Error("verifier with the key reports it missing")
	}
}
