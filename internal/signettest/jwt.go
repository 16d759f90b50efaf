package signettest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/signet-auth/signet/authority"
)

// PKCE returns a fresh code verifier and its S256 challenge.
func PKCE() (verifier, challenge string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	return v, authority.S256(v)
}

// Claims decodes a JWT's payload without verifying it (tests verify
// signatures where it matters).
func Claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	return decodePart(t, parts[1])
}

// Header decodes a JWT's header without verifying it.
func Header(t testing.TB, jwt string) map[string]any {
	t.Helper()
	return decodePart(t, strings.Split(jwt, ".")[0])
}

func decodePart(t testing.TB, part string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
