package clients_test

import (
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// TestFederatedIdentity_Matches: a wildcard is one segment of
// [A-Za-z0-9._-], never "." or "..", so no crafted subject reaches past
// it; the issuer and a literal subject compare exactly.
func TestFederatedIdentity_Matches(t *testing.T) {
	const iss = "https://kubernetes.default.svc"
	k8s := clients.FederatedIdentity{Issuer: iss, Subject: "system:serviceaccount:payments:*"}
	spiffe := clients.FederatedIdentity{Issuer: "spiffe://td", Subject: "spiffe://td/ns/*/sa/api"}
	exact := clients.FederatedIdentity{Issuer: iss, Subject: "system:serviceaccount:payments:api"}
	for _, tc := range []struct {
		id   clients.FederatedIdentity
		iss  string
		sub  string
		want bool
	}{
		{k8s, iss, "system:serviceaccount:payments:api", true},
		{k8s, iss, "system:serviceaccount:payments:api-v2.blue_1", true},
		{k8s, iss, "system:serviceaccount:payments:x:y", false},
		{k8s, iss, "system:serviceaccount:payments:x/y", false},
		{k8s, iss, "system:serviceaccount:payments:..", false},
		{k8s, iss, "system:serviceaccount:payments:.", false},
		{k8s, iss, "system:serviceaccount:payments:", false},
		{k8s, iss, "system:serviceaccount:payments::api", false},
		{k8s, iss, "system:serviceaccount:payments-evil:api", false},
		{k8s, iss, "system:serviceaccount:payments:x\u2236y", false},
		{k8s, iss, "system:serviceaccount:payments:\u0430pi", false}, // Cyrillic a
		{k8s, iss, "system:serviceaccount:payments:api\x00", false},
		{k8s, iss, "system:serviceaccount:payments:x%3Ay", false},
		{k8s, iss, "system:serviceaccount:payments:api ", false},
		{k8s, iss + "/", "system:serviceaccount:payments:api", false},
		{k8s, "", "system:serviceaccount:payments:api", false},
		{spiffe, "spiffe://td", "spiffe://td/ns/payments/sa/api", true},
		{spiffe, "spiffe://td", "spiffe://td/ns/payments/x/sa/api", false},
		{spiffe, "spiffe://td", "spiffe://td/ns/../sa/api", false},
		{spiffe, "spiffe://td", "spiffe://td/ns//sa/api", false},
		{spiffe, "spiffe://td", "spiffe://td/ns/payments/sa/api/x", false},
		{exact, iss, "system:serviceaccount:payments:api", true},
		{exact, iss, "system:serviceaccount:payments:API", false},
		{exact, iss, "", false},
	} {
		if got := tc.id.Matches(tc.iss, tc.sub); got != tc.want {
			t.Errorf("%s=%s matches %s %q = %v, want %v", tc.id.Issuer, tc.id.Subject, tc.iss, tc.sub, got, tc.want)
		}
	}
}

// TestFederatedIdentity_Validate: bad identities are refused naming
// federated_identities and the problem; a client with one needs
// private_key_jwt (its wire form) and then no key of its own.
func TestFederatedIdentity_Validate(t *testing.T) {
	reg := clients.New(newStore(t), clients.Options{})
	ok := clients.FederatedIdentity{Issuer: "https://k8s", Subject: "system:serviceaccount:payments:*"}
	spec := func(ids ...clients.FederatedIdentity) clients.Client {
		return clients.Client{ID: "pod", Audiences: []string{"api"}, AuthMethods: []string{clients.AuthPrivateKeyJWT}, Federated: ids}
	}
	if _, _, err := reg.Create(t.Context(), spec(ok)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	// Without an auth method, a client with federated identities gets
	// private_key_jwt and no secret.
	cl, secret, err := reg.Create(t.Context(), clients.Client{ID: "pod-default", Audiences: []string{"api"}, Federated: []clients.FederatedIdentity{ok}})
	if err != nil || secret != "" || len(cl.AuthMethods) != 1 || cl.AuthMethods[0] != clients.AuthPrivateKeyJWT {
		t.Fatalf("default = %v %q %v", cl.AuthMethods, secret, err)
	}
	for _, tc := range []struct {
		name string
		c    clients.Client
		want string
	}{
		{"partial-segment wildcard", spec(clients.FederatedIdentity{Issuer: "https://k8s", Subject: "system:serviceaccount:pay*"}), "whole segment"},
		{"double wildcard", spec(clients.FederatedIdentity{Issuer: "https://k8s", Subject: "system:**"}), "whole segment"},
		{"wildcard alone", spec(clients.FederatedIdentity{Issuer: "https://k8s", Subject: "*"}), "literal prefix"},
		{"issuer pattern", spec(clients.FederatedIdentity{Issuer: "https://*", Subject: "a"}), "exact"},
		{"empty issuer", spec(clients.FederatedIdentity{Subject: "a"}), "issuer"},
		{"non-ASCII subject", spec(clients.FederatedIdentity{Issuer: "https://k8s", Subject: "caf\u00e9"}), "printable ASCII"},
		{"duplicate", spec(ok, ok), "duplicate"},
		{"bad audience", spec(clients.FederatedIdentity{Issuer: "https://k8s", Subject: "a", Audience: "a b"}), "audience"},
		{"without private_key_jwt", clients.Client{ID: "pod2", Audiences: []string{"api"}, AuthMethods: []string{clients.AuthSecretBasic}, Federated: []clients.FederatedIdentity{ok}}, "private_key_jwt"},
		{"public client", clients.Client{ID: "pod3", Audiences: []string{"api"}, Public: true, AuthMethods: []string{clients.AuthNone}, Federated: []clients.FederatedIdentity{ok}}, "public"},
	} {
		if tc.c.ID == "pod" {
			tc.c.ID = "pod-bad"
		}
		_, _, err := reg.Create(t.Context(), tc.c)
		if err == nil || !strings.Contains(err.Error(), "federated_identities") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want federated_identities: ...%s", tc.name, err, tc.want)
		}
	}
}

// FuzzFederatedMatches: whatever the subject, a match of
// system:serviceaccount:payments:* is that prefix and one segment of
// [A-Za-z0-9._-] that is not "." or "..".
func FuzzFederatedMatches(f *testing.F) {
	for _, s := range []string{"system:serviceaccount:payments:api", "system:serviceaccount:payments:x:y", "system:serviceaccount:payments:..", "system:serviceaccount:payments:\u2236"} {
		f.Add(s)
	}
	const prefix = "system:serviceaccount:payments:"
	id := clients.FederatedIdentity{Issuer: "https://k", Subject: prefix + "*"}
	f.Fuzz(func(t *testing.T, sub string) {
		if !id.Matches("https://k", sub) {
			return
		}
		seg, ok := strings.CutPrefix(sub, prefix)
		if !ok || seg == "" || seg == "." || seg == ".." || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			t.Fatalf("%q matched %s", sub, id.Subject)
		}
	})
}
