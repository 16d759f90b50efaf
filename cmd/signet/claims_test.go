package main

import (
	"strings"
	"testing"
	"unicode"
)

// reservedClaimNames: the names no client extra claim and no user profile
// claim may take, in any case (issue 9 item 3; clients/claimnames.go).
var reservedClaimNames = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	"client_id", "scope", "cnf", "act", "may_act",
	"azp", "nonce", "auth_time", "at_hash", "c_hash", "acr", "amr", "sid", "typ",
	"client_instance", "active", "token_type", "username",
}

// caseVariants gives name in lower, UPPER, Title and mIxEd case.
func caseVariants(name string) []string {
	title := []rune(name)
	title[0] = unicode.ToUpper(title[0])
	mixed := []rune(name)
	for i := range mixed {
		if i%2 == 1 {
			mixed[i] = unicode.ToUpper(mixed[i])
		}
	}
	return []string{strings.ToLower(name), strings.ToUpper(name), string(title), string(mixed)}
}

// TestRun_ReservedClaims: `signet clients create --claim` and `signet
// users create --claim` refuse every reserved claim name in four cases,
// offline and online, with an error naming the claim; nothing is created.
func TestRun_ReservedClaims(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	c := testConfig(t, nil)
	out, _, err := initCmd(t, "--data-dir", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)

	try := func(mode []string) {
		t.Helper()
		for _, name := range reservedClaimNames {
			for _, v := range caseVariants(name) {
				args := append([]string{"create", "--id", "x", "--audience", "API", "--claim", v + "=forged"}, mode...)
				if _, _, err := clientsCmd(t, args...); err == nil || !strings.Contains(err.Error(), "'"+v+"'") {
					t.Errorf("clients %v = %v, want an error naming '%s'", args, err, v)
				}
				args = append([]string{"create", "--username", "x", "--claim", v + "=forged"}, mode...)
				if _, _, err := usersCmd(t, "a good password\n", args...); err == nil || !strings.Contains(err.Error(), "'"+v+"'") {
					t.Errorf("users %v = %v, want an error naming '%s'", args, err, v)
				}
			}
		}
		// An ordinary claim goes through, so the refusals above are about the names.
		args := append([]string{"create", "--id", "ok", "--audience", "API", "--claim", "Team=payments"}, mode...)
		if _, _, err := clientsCmd(t, args...); err != nil {
			t.Errorf("clients %v = %v", args, err)
		}
		args = append([]string{"create", "--username", "ok", "--claim", "Team=payments", "--json"}, mode...)
		if out, _, err := usersCmd(t, "a good password\n", args...); err != nil || !strings.Contains(out, `"Team": "payments"`) {
			t.Errorf("users %v = %v %s", args, err, out)
		}
		for _, args := range [][]string{{"list", "--json"}, {"get", "--json", "x"}} {
			out, _, _ := clientsCmd(t, append(args, mode...)...)
			if strings.Contains(out, "forged") || strings.Contains(out, `"x"`) {
				t.Errorf("clients %v shows a refused client: %s", args, out)
			}
		}
		out, _, _ := usersCmd(t, "", append([]string{"list", "--json"}, mode...)...)
		if strings.Contains(out, "forged") {
			t.Errorf("users list shows a refused user: %s", out)
		}
	}

	try([]string{"--data-dir", c.DataDir})
	// Online, on a fresh registry state: delete what the offline pass made.
	m, _ := startMain(t, c, nil)
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	online := []string{"--server", m.URL()}
	if _, _, err := clientsCmd(t, append([]string{"delete", "ok"}, online...)...); err != nil {
		t.Fatal(err)
	}
	if _, _, err := usersCmd(t, "", append([]string{"delete", "ok"}, online...)...); err != nil {
		t.Fatal(err)
	}
	try(online)
}

// TestRun_ScopeSeparators: in --scope only the space separates scopes; a
// TAB, a line break or a no-break space is refused, not split on.
func TestRun_ScopeSeparators(t *testing.T) {
	t.Setenv("SIGNET_KEYS_ALGORITHMS", "ES256,EdDSA")
	dir := t.TempDir()
	for _, sep := range []string{"\t", "\n", "\u00a0", "\u2003", "\u0085"} {
		_, _, err := clientsCmd(t, "create", "--data-dir", dir, "--id", "x", "--audience", "API", "--scope", "read"+sep+"write")
		if err == nil || !strings.Contains(err.Error(), "scopes") {
			t.Errorf("--scope read%qwrite = %v, want an error naming scopes", sep, err)
		}
	}
	out, _, err := clientsCmd(t, "create", "--data-dir", dir, "--id", "x", "--audience", "API", "--scope", "read  write", "--json")
	if err != nil {
		t.Fatalf("--scope with two spaces: %v", err)
	}
	decodeSecret(t, out)
	out, _, err = clientsCmd(t, "get", "--data-dir", dir, "--json", "x")
	if err != nil || !strings.Contains(out, `"read",`) || !strings.Contains(out, `"write"`) {
		t.Errorf("get = %v %s, want scopes read and write", err, out)
	}
}
