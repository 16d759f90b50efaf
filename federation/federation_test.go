package federation_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/federation"
	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/outbound"
)

// TestKubernetesPod: a pod's projected service-account token, from an
// issuer that publishes discovery and /openid/v1/jwks as kube-apiserver
// does, gets a Signet token with no secret anywhere: as client_assertion
// of client_credentials and as the jwt-bearer grant, with or without
// client_id. Only the mapped claims reach the Signet token.
func TestKubernetesPod(t *testing.T) {
	kube := newKubeIssuer(t, nil)
	s := newSignet(t, fetcher(t, kube.srv), federation.Issuer{Issuer: kube.srv.URL, Algorithms: []string{"RS256"},
		Claims: map[string]string{"kubernetes.io.namespace": "k8s_namespace", "kubernetes.io.pod.name": "k8s_pod", "sub": "workload"}})
	s.workload("payments-api", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:*"})
	now := s.clock.Now()
	hostile := func(c map[string]any) { // claims that must never reach the Signet token
		c["scope"], c["cnf"], c["roles"], c["act"], c["email"] = "signet:admin", map[string]any{"jkt": "x"}, []string{"admin"}, map[string]any{"sub": "x"}, "a@b"
	}

	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"client_assertion", assertionForm(kube.podToken(now, "payments", "api", s.issuer, hostile))},
		{"client_assertion with client_id", func() url.Values {
			f := assertionForm(kube.podToken(now, "payments", "api", s.issuer+"/oauth2/token", nil))
			f.Set("client_id", "payments-api")
			return f
		}()},
		{"jwt-bearer grant", bearerForm(kube.podToken(now, "payments", "worker", s.issuer, hostile))},
	} {
		code, body := s.post("/oauth2/token", tc.form, "", "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", tc.name, code, body)
		}
		c := signettest.Claims(t, body["access_token"].(string))
		if c["sub"] != "payments-api" || c["client_id"] != "payments-api" || c["scope"] != "read" || c["aud"] != "https://api.example" {
			t.Errorf("%s: claims %v", tc.name, c)
		}
		for _, leak := range []string{"kubernetes.io", "cnf", "roles", "act", "email"} {
			if _, ok := c[leak]; ok {
				t.Errorf("%s: external claim %s leaked into the Signet token: %v", tc.name, leak, c)
			}
		}
		if tc.name == "jwt-bearer grant" {
			if c["k8s_namespace"] != "payments" || c["k8s_pod"] != "api-7d9f" || c["workload"] != "system:serviceaccount:payments:worker" {
				t.Errorf("mapped claims: %v", c)
			}
			if exp := int64(c["exp"].(float64)); exp > now.Add(10*time.Minute).Unix() {
				t.Errorf("exp %d outlives the pod token's", exp)
			}
		} else if _, ok := c["k8s_namespace"]; ok {
			t.Errorf("%s: a client assertion's claims are never mapped: %v", tc.name, c)
		}
	}

	// The grant with client authentication of the client's own (here the
	// same kind of token as client_assertion): the binding must be its.
	form := bearerForm(kube.podToken(now, "payments", "api", s.issuer, nil))
	for k, v := range assertionForm(kube.podToken(now, "payments", "api", s.issuer, nil)) {
		if k != "grant_type" {
			form[k] = v
		}
	}
	if code, body := s.post("/oauth2/token", form, "", ""); code != http.StatusOK {
		t.Fatalf("jwt-bearer with client_assertion: %d %v", code, body)
	}

	// Discovery lists the grant once it is configured.
	req, _ := http.NewRequest(http.MethodGet, s.issuer+"/.well-known/openid-configuration", nil)
	if _, md := do(t, req); !slices.Contains(md["grant_types_supported"].([]any), any(clients.GrantJWTBearer)) {
		t.Errorf("grant_types_supported = %v", md["grant_types_supported"])
	}
}

// TestSPIFFE: a SPIFFE JWT-SVID from a trust domain whose keys are a
// static JWKS file (the issuer is not reachable).
func TestSPIFFE(t *testing.T) {
	key := newECKey(t)
	keys, err := clients.ParsePublicKeys(ecJWKS(key, "spire-1"))
	if err != nil {
		t.Fatal(err)
	}
	const td = "spiffe://trust.domain"
	s := newSignet(t, nil, federation.Issuer{Issuer: td, Keys: keys, Algorithms: []string{"ES256"}})
	s.workload("x-y", clients.FederatedIdentity{Issuer: td, Subject: "spiffe://trust.domain/ns/x/sa/*"})
	now := s.clock.Now()
	svid := func(sub string) string {
		typ := "JWT"
		if strings.HasSuffix(sub, "/z") {
			typ = "JOSE" // the SPIFFE JWT-SVID specification allows both
		}
		return signES256(key, map[string]any{"alg": "ES256", "kid": "spire-1", "typ": typ},
			map[string]any{"iss": td, "sub": sub, "aud": []string{s.issuer}, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix()})
	}
	for _, form := range []url.Values{assertionForm(svid("spiffe://trust.domain/ns/x/sa/y")), bearerForm(svid("spiffe://trust.domain/ns/x/sa/z"))} {
		code, body := s.post("/oauth2/token", form, "", "")
		if code != http.StatusOK || signettest.Claims(t, body["access_token"].(string))["sub"] != "x-y" {
			t.Fatalf("%s: %d %v", form.Get("grant_type"), code, body)
		}
	}
	// A JWT-SVID has no jti: it cannot be tracked, and is accepted until exp.
	tok := svid("spiffe://trust.domain/ns/x/sa/y")
	for range 2 {
		if code, body := s.post("/oauth2/token", assertionForm(tok), "", ""); code != http.StatusOK {
			t.Fatalf("svid without jti: %d %v", code, body)
		}
	}
	for _, sub := range []string{"spiffe://trust.domain/ns/x/sa/y/z", "spiffe://trust.domain/ns/x/sa/..", "spiffe://trust.domain/ns/x/sa/", "spiffe://trust.domain/ns/xx/sa/y", "spiffe://other.domain/ns/x/sa/y"} {
		if code, body := s.post("/oauth2/token", assertionForm(svid(sub)), "", ""); code != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Errorf("sub %s: %d %v, want 401 invalid_client", sub, code, body)
		}
	}
}

// TestAttacks: each row a token or an issuer an attacker controls, refused
// as client_assertion (401 invalid_client) and, without client
// credentials, as the jwt-bearer grant (400 invalid_grant).
func TestAttacks(t *testing.T) {
	kube := newKubeIssuer(t, nil)
	stranger := newKubeIssuer(t, nil) // a cluster nobody trusted
	private := newKubeIssuer(t, func(k *kubeIssuer) { k.jwksURI = "https://10.20.30.40/openid/v1/jwks" })
	metadata := newKubeIssuer(t, func(k *kubeIssuer) { k.jwksURI = "https://169.254.169.254/latest/meta-data/jwks" })
	redirect := newKubeIssuer(t, func(k *kubeIssuer) {
		k.jwks = func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://169.254.169.254/latest/meta-data/jwks", http.StatusFound)
		}
	})
	impostor := newKubeIssuer(t, func(k *kubeIssuer) { k.discoveryIssuer = "https://kubernetes.default.svc.cluster.local" })
	huge := newKubeIssuer(t, func(k *kubeIssuer) {
		k.jwks = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","k":"` + strings.Repeat("A", 4<<20) + `"}]}`))
		}
	})
	var trusted []federation.Issuer
	for _, k := range []*kubeIssuer{kube, private, metadata, redirect, huge, impostor} {
		trusted = append(trusted, federation.Issuer{Issuer: k.srv.URL})
	}
	s := newSignet(t, fetcher(t, kube.srv), trusted...)
	s.workload("payments-api", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:*"})
	for _, k := range []*kubeIssuer{private, metadata, redirect, huge, impostor} {
		s.workload("victim-"+strings.TrimPrefix(k.srv.URL, "https://127.0.0.1:"), clients.FederatedIdentity{Issuer: k.srv.URL, Subject: "system:serviceaccount:payments:api"})
	}
	now := s.clock.Now()
	pod := func(edit func(map[string]any)) string { return kube.podToken(now, "payments", "api", s.issuer, edit) }
	bare := func(sub string) string { // no kubernetes.io claim: the pattern alone must hold
		return pod(func(c map[string]any) { c["sub"] = sub; delete(c, "kubernetes.io") })
	}
	pub := kube.key.PublicKey
	replayed := pod(nil)
	if code, body := s.post("/oauth2/token", assertionForm(replayed), "", ""); code != http.StatusOK {
		t.Fatalf("first use: %d %v", code, body)
	}
	replayedGrant := pod(nil)
	if code, body := s.post("/oauth2/token", bearerForm(replayedGrant), "", ""); code != http.StatusOK {
		t.Fatalf("first use as grant: %d %v", code, body)
	}

	for _, tc := range []struct {
		name, tok, want string
		grantTok        string // the row's token as a grant when it differs (a jti already spent)
	}{
		{name: "untrusted issuer", tok: stranger.podToken(now, "payments", "api", s.issuer, nil), want: "iss and sub"},
		{name: "token for another audience", tok: pod(func(c map[string]any) { c["aud"] = []string{"https://other.example"} }), want: "aud"},
		{name: "token for the Kubernetes API server", tok: pod(func(c map[string]any) { c["aud"] = "https://kubernetes.default.svc.cluster.local" }), want: "aud"},
		{name: "expired", tok: pod(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), want: "expired"},
		{name: "no exp", tok: pod(func(c map[string]any) { delete(c, "exp") }), want: "no exp"},
		{name: "far-future exp", tok: pod(func(c map[string]any) { c["exp"] = now.Add(365 * 24 * time.Hour).Unix() }), want: "ahead"},
		{name: "not valid yet", tok: pod(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), want: "nbf"},
		{name: "typ of a DPoP proof", tok: signRS256(kube.key, map[string]any{"alg": "RS256", "kid": kube.kid, "typ": "dpop+jwt"}, signettest.Claims(t, pod(nil))), want: "typ"},
		{name: "alg none", tok: jsonB64(map[string]any{"alg": "none"}) + "." + jsonB64(signettest.Claims(t, pod(nil))) + ".AA", want: "alg"},
		{name: "HMAC with the public key (n)", tok: signHS256(pub.N.Bytes(), map[string]any{"alg": "HS256", "kid": kube.kid}, signettest.Claims(t, pod(nil))), want: "alg"},
		{name: "HMAC with the JWKS document", tok: signHS256(kube.jwksDoc(), map[string]any{"alg": "HS256", "kid": kube.kid}, signettest.Claims(t, pod(nil))), want: "alg"},
		{name: "signed by another key", tok: stranger.podToken(now, "payments", "api", s.issuer, func(c map[string]any) { c["iss"] = kube.srv.URL }), want: "signature"},
		{name: "pattern escape: extra segment", tok: bare("system:serviceaccount:payments:x:y"), want: "bound"},
		{name: "pattern escape: dot dot", tok: bare("system:serviceaccount:payments:.."), want: "bound"},
		{name: "pattern escape: dot", tok: bare("system:serviceaccount:payments:."), want: "bound"},
		{name: "pattern escape: empty segment", tok: bare("system:serviceaccount:payments:"), want: "bound"},
		{name: "pattern escape: empty then segment", tok: bare("system:serviceaccount:payments::api"), want: "bound"},
		{name: "pattern escape: slash", tok: bare("system:serviceaccount:payments:x/y"), want: "bound"},
		{name: "pattern escape: namespace prefix", tok: bare("system:serviceaccount:payments-evil:api"), want: "bound"},
		{name: "pattern escape: look-alike colon", tok: bare("system:serviceaccount:payments:x\u2236y"), want: "bound"},
		{name: "pattern escape: fullwidth colon", tok: bare("system:serviceaccount:payments\uff1aapi"), want: "bound"},
		{name: "pattern escape: NUL", tok: bare("system:serviceaccount:payments:api\x00"), want: "bound"},
		{name: "pattern escape: percent-encoded colon", tok: bare("system:serviceaccount:payments:x%3Ay"), want: "bound"},
		{name: "kubernetes.io claim of another namespace", tok: pod(func(c map[string]any) { c["kubernetes.io"].(map[string]any)["namespace"] = "billing" }), want: "kubernetes.io"},
		{name: "replay of a jti", tok: replayed, grantTok: replayedGrant, want: "already used"},
		{name: "jwks_uri at a private address", tok: private.podToken(now, "payments", "api", s.issuer, nil), want: "could not be fetched"},
		{name: "jwks_uri at the metadata address", tok: metadata.podToken(now, "payments", "api", s.issuer, nil), want: "could not be fetched"},
		{name: "jwks_uri redirecting to the metadata address", tok: redirect.podToken(now, "payments", "api", s.issuer, nil), want: "could not be fetched"},
		{name: "discovery naming another issuer", tok: impostor.podToken(now, "payments", "api", s.issuer, nil), want: "could not be fetched"},
		{name: "huge JWKS body", tok: huge.podToken(now, "payments", "api", s.issuer, nil), want: "could not be fetched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.post("/oauth2/token", assertionForm(tc.tok), "", "")
			if code != http.StatusUnauthorized || body["error"] != "invalid_client" || !strings.Contains(body["error_description"].(string), tc.want) {
				t.Errorf("client_assertion: %d %v, want 401 invalid_client naming %q", code, body, tc.want)
			}
			if tc.want == "iss and sub" {
				tc.want = "not a trusted issuer" // the grant says what the assertion lacks
			}
			grantTok := tc.tok
			if tc.grantTok != "" {
				grantTok = tc.grantTok
			}
			code, body = s.post("/oauth2/token", bearerForm(grantTok), "", "")
			if code != http.StatusBadRequest || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), tc.want) {
				t.Errorf("jwt-bearer grant: %d %v, want 400 invalid_grant naming %q", code, body, tc.want)
			}
		})
	}
}

// TestBindingBelongsToTheClient: a token bound to one client never
// authenticates another, whether the request names it by client_id,
// authenticates as it with a secret for the grant, or the token is bound
// to two clients at once; a disabled client is refused.
func TestBindingBelongsToTheClient(t *testing.T) {
	kube := newKubeIssuer(t, nil)
	s := newSignet(t, fetcher(t, kube.srv), federation.Issuer{Issuer: kube.srv.URL})
	s.workload("payments-api", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:api"})
	s.workload("billing", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:billing:*"})
	_, secret, err := s.srv.Clients().Create(context.Background(), clients.Client{ID: "secret-holder", Scopes: []string{"read"}, Audiences: []string{"https://api.example"},
		GrantTypes: []string{clients.GrantJWTBearer}})
	if err != nil {
		t.Fatal(err)
	}
	now := s.clock.Now()
	tok := func() string { return kube.podToken(now, "payments", "api", s.issuer, nil) }

	named := assertionForm(tok())
	named.Set("client_id", "billing")
	if code, body := s.post("/oauth2/token", named, "", ""); code != http.StatusUnauthorized || !strings.Contains(body["error_description"].(string), "bound") {
		t.Errorf("client_id of another client: %d %v", code, body)
	}
	if code, body := s.post("/oauth2/token", bearerForm(tok()), "secret-holder", secret); code != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("grant for another client's binding: %d %v", code, body)
	}

	// Bound to two clients: the request must say which.
	s.workload("payments-audit", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:*"})
	if code, body := s.post("/oauth2/token", assertionForm(tok()), "", ""); code != http.StatusUnauthorized || !strings.Contains(body["error_description"].(string), "send client_id") {
		t.Errorf("ambiguous binding: %d %v", code, body)
	}
	named = assertionForm(tok())
	named.Set("client_id", "payments-audit")
	if code, body := s.post("/oauth2/token", named, "", ""); code != http.StatusOK {
		t.Errorf("ambiguous binding with client_id: %d %v", code, body)
	}

	disabled := true
	if _, err := s.srv.Clients().Update(context.Background(), "payments-audit", clients.Patch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	named = assertionForm(tok())
	named.Set("client_id", "payments-audit")
	if code, body := s.post("/oauth2/token", named, "", ""); code != http.StatusUnauthorized || !strings.Contains(body["error_description"].(string), "disabled") {
		t.Errorf("disabled client: %d %v", code, body)
	}
}

// TestReuseAllowed: an issuer whose policy allows reuse (a pod presents
// the same projected token until kubelet rotates it) accepts its jti
// more than once.
func TestReuseAllowed(t *testing.T) {
	kube := newKubeIssuer(t, nil)
	s := newSignet(t, fetcher(t, kube.srv), federation.Issuer{Issuer: kube.srv.URL, AllowReuse: true})
	s.workload("payments-api", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:api"})
	tok := kube.podToken(s.clock.Now(), "payments", "api", s.issuer, nil)
	for i := range 3 {
		if code, body := s.post("/oauth2/token", assertionForm(tok), "", ""); code != http.StatusOK {
			t.Fatalf("use %d: %d %v", i, code, body)
		}
	}
}

// TestMappedClaimOntoSignetClaim: a trust policy can never map an
// external claim onto a claim Signet sets (sub, scope, cnf, ... in any
// case) or onto a user's claim; New names the claim and the fix.
func TestMappedClaimOntoSignetClaim(t *testing.T) {
	for _, dst := range []string{"sub", "scope", "SCOPE", "Sub", "cnf", "client_id", "iss", "aud", "exp", "act", "roles", "email", "client_instance", "has space", ""} {
		_, err := federation.New(federation.Config{Issuers: []federation.Issuer{{Issuer: "spiffe://x", Keys: []clients.PublicKey{},
			Claims: map[string]string{"kubernetes.io.namespace": dst}}}, Signet: "https://signet.example", Store: nil})
		if err == nil || !strings.Contains(err.Error(), "maps to") {
			t.Fatalf("mapping onto %q: %v", dst, err)
		}
	}
	if p := federation.MappedClaimProblem("kubernetes.io.namespace", "scope"); !strings.Contains(p, "reserved") || !strings.Contains(p, "k8s_namespace") {
		t.Errorf("problem = %q: want the reason and a fix", p)
	}
	if p := federation.MappedClaimProblem("kubernetes.io.namespace", "k8s_namespace"); p != "" {
		t.Errorf("a plain name refused: %q", p)
	}
}

// TestAdminAPI: the admin API creates and updates a client's federated
// identities and names the field of a bad one.
func TestAdminAPI(t *testing.T) {
	s := newSignet(t, nil)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"signet:admin"}, "audience": {"signet-admin"}}
	code, body := s.post("/oauth2/token", form, "admin", s.adminKey)
	if code != http.StatusOK {
		t.Fatalf("admin token: %d %v", code, body)
	}
	bearer := body["access_token"].(string)
	call := func(method, path string, v any) (int, map[string]any) {
		b, _ := json.Marshal(v)
		req, _ := http.NewRequest(method, s.issuer+path, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		return do(t, req)
	}
	code, body = call(http.MethodPost, "/admin/clients", map[string]any{"client_id": "pod", "audiences": []string{"api"}, "token_endpoint_auth_methods": []string{"private_key_jwt"},
		"federated_identities": []any{map[string]any{"issuer": "https://kubernetes.default.svc", "subject": "system:serviceaccount:payments:*"}}})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, body)
	}
	for _, bad := range []map[string]any{
		{"issuer": "https://k", "subject": "system:serviceaccount:pay*"},
		{"issuer": "https://k", "subject": "*"},
		{"issuer": "https://k*", "subject": "a"},
		{"issuer": "", "subject": "a"},
		{"issuer": "https://k", "subject": "caf\u00e9"},
	} {
		code, body = call(http.MethodPatch, "/admin/clients/pod", map[string]any{"federated_identities": []any{bad}})
		if code != http.StatusBadRequest || !strings.Contains(body["error_description"].(string), "federated_identities") {
			t.Errorf("%v: %d %v, want 400 naming federated_identities", bad, code, body)
		}
	}
	code, body = call(http.MethodPatch, "/admin/clients/pod", map[string]any{"federated_identities": []any{map[string]any{"issuer": "https://k", "subject": "spiffe://td/ns/a/sa/*", "audience": "https://signet.example"}}})
	if code != http.StatusOK || len(body["federated_identities"].([]any)) != 1 {
		t.Errorf("update: %d %v", code, body)
	}
}

// TestPrivateKeyJWTTyp: the typ rule of client assertions still holds
// beside federated tokens (it moved out of the shared parser): an
// access token, a JOSE or a DPoP typ is refused for private_key_jwt.
func TestPrivateKeyJWTTyp(t *testing.T) {
	s := newSignet(t, nil)
	key := newECKey(t)
	if _, _, err := s.srv.Clients().Create(context.Background(), clients.Client{ID: "svc", Scopes: []string{"read"}, Audiences: []string{"https://api.example"},
		JWKS: ecJWKS(key, "k1")}); err != nil {
		t.Fatal(err)
	}
	now := s.clock.Now()
	for i, typ := range []string{"JWT", "at+jwt", "JOSE", "dpop+jwt"} {
		tok := signES256(key, map[string]any{"alg": "ES256", "kid": "k1", "typ": typ},
			map[string]any{"iss": "svc", "sub": "svc", "aud": s.issuer, "exp": now.Add(time.Minute).Unix(), "jti": fmt.Sprint("j", i)})
		code, body := s.post("/oauth2/token", assertionForm(tok), "", "")
		if want := typ == "JWT"; (code == http.StatusOK) != want || !want && !strings.Contains(body["error_description"].(string), "typ") {
			t.Errorf("typ %s: %d %v", typ, code, body)
		}
	}
}

// TestAnotherSignet: a client of one Signet (B) authenticates at another
// (A) with B's access token (typ at+jwt), audienced to A and bound on A
// to B's issuer and client id; keys by B's discovery document.
func TestAnotherSignet(t *testing.T) {
	loopback := outbound.New(outbound.Options{AllowLoopback: true})
	b := newSignet(t, nil)
	a := newSignet(t, loopback, federation.Issuer{Issuer: b.issuer})
	a.workload("from-b", clients.FederatedIdentity{Issuer: b.issuer, Subject: "svc-b"})
	_, secret, err := b.srv.Clients().Create(context.Background(), clients.Client{ID: "svc-b", Audiences: []string{a.issuer}})
	if err != nil {
		t.Fatal(err)
	}
	code, body := b.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc-b", secret)
	if code != http.StatusOK {
		t.Fatalf("token at B: %d %v", code, body)
	}
	code, body = a.post("/oauth2/token", assertionForm(body["access_token"].(string)), "", "")
	if code != http.StatusOK || signettest.Claims(t, body["access_token"].(string))["sub"] != "from-b" {
		t.Fatalf("B's token at A: %d %v", code, body)
	}
}

// TestClusterKeyRotation: a token signed with a key the cached key set
// lacks (the cluster rotated) makes Signet fetch the set again, at most
// once per refetch interval; an unknown kid before the interval has passed
// is refused without a fetch.
func TestClusterKeyRotation(t *testing.T) {
	kube := newKubeIssuer(t, nil)
	var fetches atomic.Int64
	kube.jwks = func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(kube.jwksDoc())
	}
	fetchClock := signettest.NewClock(time.Now())
	pool := x509.NewCertPool()
	pool.AddCert(kube.srv.Certificate())
	f := outbound.New(outbound.Options{RootCAs: pool, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, RefetchEvery: 30 * time.Second, Now: fetchClock.Now})
	s := newSignet(t, f, federation.Issuer{Issuer: kube.srv.URL, AllowReuse: true})
	s.workload("payments-api", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:api"})
	now := s.clock.Now()
	if code, body := s.post("/oauth2/token", assertionForm(kube.podToken(now, "payments", "api", s.issuer, nil)), "", ""); code != http.StatusOK {
		t.Fatalf("before rotation: %d %v", code, body)
	}
	kube.rotate(t, "kube-2")
	rotated := kube.podToken(now, "payments", "api", s.issuer, nil)
	if code, body := s.post("/oauth2/token", assertionForm(rotated), "", ""); code != http.StatusUnauthorized || fetches.Load() != 1 {
		t.Fatalf("unknown kid within the refetch interval: %d %v, %d fetches", code, body, fetches.Load())
	}
	fetchClock.Add(31 * time.Second)
	if code, body := s.post("/oauth2/token", assertionForm(rotated), "", ""); code != http.StatusOK || fetches.Load() != 2 {
		t.Fatalf("after rotation: %d %v, %d fetches", code, body, fetches.Load())
	}
}
