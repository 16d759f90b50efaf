package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/users"
)

// TestFeedKey (issue 16, item 12): the served revocation feed lists a
// logged-out user under the keyed hash that `signet keys feed-key` gives
// verifiers, never the user's id; the key is derived from the KEK, and
// the command refuses --server (it needs the KEK).
func TestFeedKey(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256")
	c := testConfig(t, func(c *config.Config) { c.Keys.Algorithms = []string{"ES256"} })
	m, _ := startMain(t, c, nil)
	u, err := m.Server.Users().Create(t.Context(), users.NewUser{Username: "alice", Password: "a long password"})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, _, err := usersCmd(t, "", "logout", "--data-dir", c.DataDir, "alice"); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCmd(t, "keys", "feed-key", "--data-dir", c.DataDir)
	if code != 0 {
		t.Fatalf("feed-key: %d %s", code, stderr)
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(stdout))
	if err != nil || len(key) != 32 {
		t.Fatalf("feed-key printed %q", stdout)
	}
	kekText, _ := os.ReadFile(c.KEKPath())
	kek, _ := keksource.Decode(string(kekText))
	if strings.Contains(stdout, base64.StdEncoding.EncodeToString(kek)) || strings.Contains(stdout, base64.RawURLEncoding.EncodeToString(kek)) {
		t.Error("feed-key printed the KEK")
	}
	m2, _ := startMain(t, c, nil)
	resp, err := http.Get(m2.URL() + "/oauth2/revocations")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), u.ID) || !strings.Contains(string(body), authority.FeedSubjectHash(key, u.ID)) {
		t.Errorf("feed = %s; want alice's keyed hash, not her id %s", body, u.ID)
	}
	if _, stderr, code := runCmd(t, "keys", "feed-key", "--server", m2.URL()); code == 0 || !strings.Contains(stderr, "KEK") && !strings.Contains(stderr, "key-encryption key") {
		t.Errorf("feed-key --server: %d %s", code, stderr)
	}
}
