package login_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/users"
)

// softKey is a software WebAuthn authenticator with one credential: it
// answers a page's options as a browser would pass them to a security key,
// and can lie about the origin or the RP ID, as a phishing site's would.
type softKey struct {
	key    *ecdsa.PrivateKey
	id     []byte
	count  uint32
	origin string // the origin the browser reports
	rpID   string // the RP ID whose hash the authenticator signs
	noUV   bool   // assertions say user present, not verified
}

func newSoftKey(t testing.TB, origin, rpID string) *softKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &softKey{key: k, id: id, origin: origin, rpID: rpID}
}

var b64 = base64.RawURLEncoding

var optionsRE = regexp.MustCompile(`data-options="([^"]*)"`)

// pageChallenge reads the challenge of the page's passkey form.
func pageChallenge(t testing.TB, p page) string {
	t.Helper()
	m := optionsRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no passkey form on the page (%d):\n%s", p.Status, p.Body)
	}
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &o); err != nil || o.PublicKey.Challenge == "" {
		t.Fatalf("passkey options %q: %v", m[1], err)
	}
	return o.PublicKey.Challenge
}

func (k *softKey) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return b
}

func (k *softKey) authData(flags byte, attested []byte) []byte {
	h := sha256.Sum256([]byte(k.rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, attested...)
}

// coseKey is the credential's public key as WebAuthn carries it (COSE, ES256).
func (k *softKey) coseKey(t testing.TB) []byte {
	t.Helper()
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: k.key.X.FillBytes(make([]byte, 32)), -3: k.key.Y.FillBytes(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	return cose
}

// create answers registration options (attestation "none").
func (k *softKey) create(t testing.TB, challenge string) string {
	t.Helper()
	cose := k.coseKey(t)
	attested := make([]byte, 16) // AAGUID zero
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	ao, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(0x45, attested)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(k.clientData("webauthn.create", challenge)), "attestationObject": b64.EncodeToString(ao)}})
	return string(b)
}

// get answers assertion options for userID.
func (k *softKey) get(t testing.TB, challenge, userID string) string {
	t.Helper()
	k.count++
	flags := byte(0x05) // UP, UV
	if k.noUV {
		flags = 0x01
	}
	ad := k.authData(flags, nil)
	cd := k.clientData("webauthn.get", challenge)
	cdh := sha256.Sum256(cd)
	digest := sha256.Sum256(append(slices.Clone(ad), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString([]byte(userID))}})
	return string(b)
}

// passkeyForm returns the hidden fields of the page's passkey form.
func passkeyForm(t testing.TB, p page) (string, url.Values) {
	t.Helper()
	i := strings.Index(p.Body, `class="passkey"`)
	if i < 0 {
		t.Fatalf("no passkey form:\n%s", p.Body)
	}
	start := strings.LastIndex(p.Body[:i], "<form")
	end := strings.Index(p.Body[i:], "</form>")
	return signettest.FormOf(t, page{Body: p.Body[start : i+end]})
}

// addPasskey adds k as a passkey named name through b's account page.
func (b *browser) addPasskey(k *softKey, name string) page {
	b.e.t.Helper()
	return b.addPasskeyOn(b.Get(b.e.issuer+"/account"), k, name)
}

// addPasskeyOn answers the passkey form of an account page already shown.
func (b *browser) addPasskeyOn(acct page, k *softKey, name string) page {
	t := b.e.t
	t.Helper()
	action, v := passkeyForm(t, acct)
	v.Set("name", name)
	v.Set("credential", k.create(t, pageChallenge(t, acct)))
	return b.Post(b.e.issuer+action, v)
}

// TestPasskeys_Attacks: passkeys added on the account page and used after
// the password, with a software authenticator; the rows are the attacks:
// a registration or an assertion for another origin or RP ID, a passkey
// registered for another user, an assertion replayed.
func TestPasskeys_Attacks(t *testing.T) {
	logs := &signettest.LogBuffer{}
	e := newEnv(t, envOptions{factors: true, localhost: true, log: logs})
	secret := e.webClient("web", nil)
	origin := e.issuer
	bob, err := e.srv.Users().Create(context.Background(), users.NewUser{Username: "bob", Password: alicePassword})
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(b *browser, user string) page {
		q, _ := factorQuery("web", url.Values{"prompt": {"login"}})
		return b.Submit(b.Authorize(q), url.Values{"username": {user}, "password": {alicePassword}})
	}
	// Registrations: a phishing origin's and another RP ID's are refused.
	ba := e.browser()
	e.flow(ba, "web", secret, nil)
	for _, k := range []*softKey{newSoftKey(t, "https://evil.example", "localhost"), newSoftKey(t, origin, "evil.example")} {
		if p := ba.addPasskey(k, "bad"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "was not added") {
			t.Fatalf("registration for origin %s, RP ID %s = %d", k.origin, k.rpID, p.Status)
		}
	}
	alice := newSoftKey(t, origin, "localhost")
	older := ba.Get(e.issuer + "/account") // shown before alice had a second factor
	if p := ba.addPasskey(alice, "laptop"); p.Status != http.StatusSeeOther {
		t.Fatalf("add passkey = %d:\n%s", p.Status, p.Body)
	}
	if p := ba.Get(e.issuer + "/account"); !strings.Contains(p.Body, "laptop (added") {
		t.Fatalf("account page without the passkey:\n%s", p.Body)
	}
	// The same password-only session cannot add another: alice has a
	// second factor now, and the password alone must not add factors.
	if p := ba.addPasskeyOn(older, newSoftKey(t, origin, "localhost"), "attacker"); p.Status != http.StatusForbidden {
		t.Fatalf("a password-only session adding a passkey to an account with one = %d", p.Status)
	}
	if p := ba.Get(e.issuer + "/account"); !strings.Contains(p.Body, `id="factors-locked"`) || strings.Contains(p.Body, "data-webauthn") {
		t.Fatalf("account page of a password-only session with factors offers to add one:\n%s", p.Body)
	}
	bb := e.browser()
	q, _ := factorQuery("web", nil)
	bb.login(bb.Authorize(q), "bob", alicePassword)
	bobKey := newSoftKey(t, origin, "localhost")
	if p := bb.addPasskey(bobKey, "bob's key"); p.Status != http.StatusSeeOther {
		t.Fatalf("bob's passkey = %d", p.Status)
	}

	// Sign-ins: after the password, the passkey.
	b := e.browser()
	otp := signIn(b, "alice")
	ch := pageChallenge(t, otp)
	_, form := passkeyForm(t, otp)
	post := func(cred string) page {
		v := url.Values{}
		for k, vs := range form {
			v[k] = vs
		}
		v.Set("credential", cred)
		return b.Post(e.issuer+"/login/otp", v)
	}
	for _, row := range []struct {
		name string
		cred string
	}{
		{"assertion for another origin", (&softKey{key: alice.key, id: alice.id, origin: "https://evil.example", rpID: "localhost", count: 10}).get(t, ch, e.alice.ID)},
		{"assertion for another RP ID", (&softKey{key: alice.key, id: alice.id, origin: origin, rpID: "evil.example", count: 20}).get(t, ch, e.alice.ID)},
		{"a passkey registered for another user", bobKey.get(t, ch, e.alice.ID)},
		{"bob's passkey with bob's user handle", bobKey.get(t, ch, bob.ID)},
		{"not an assertion", `{"id":"x"}`},
	} {
		if p := post(row.cred); p.Status != http.StatusUnauthorized || p.Location != nil {
			t.Errorf("%s = %d %v", row.name, p.Status, p.Location)
		}
	}
	good := alice.get(t, ch, e.alice.ID)
	codeFrom(t, post(good))
	b2 := e.browser()
	q, verifier := factorQuery("web", url.Values{"prompt": {"login"}})
	otp2 := b2.Submit(b2.Authorize(q), url.Values{"username": {"alice"}, "password": {alicePassword}})
	// The assertion that worked, replayed on a new page: another challenge.
	_, form2 := passkeyForm(t, otp2)
	form2.Set("credential", good)
	if r := b2.Post(e.issuer+"/login/otp", form2); r.Status != http.StatusUnauthorized {
		t.Fatalf("replayed assertion = %d", r.Status)
	}
	form2.Set("credential", alice.get(t, pageChallenge(t, otp2), e.alice.ID))
	c := e.idClaims(b2.Post(e.issuer+"/login/otp", form2), "web", secret, verifier)
	if c["acr"] != sessions.ACRMFA || !slices.Equal(amrOf(c), []string{"pwd", "swk", "mfa"}) {
		t.Fatalf("passkey sign-in: acr %v amr %v", c["acr"], c["amr"])
	}

	// A copy of alice's authenticator (same key, its own counter, behind
	// the real one's): its valid assertion is refused and the operator
	// hears of it; the real authenticator, counting on, still works.
	clone := &softKey{key: alice.key, id: alice.id, origin: origin, rpID: "localhost", count: alice.count - 2}
	b3 := e.browser()
	otp3 := signIn(b3, "alice")
	_, form3 := passkeyForm(t, otp3)
	form3.Set("credential", clone.get(t, pageChallenge(t, otp3), e.alice.ID))
	if p := b3.Post(e.issuer+"/login/otp", form3); p.Status != http.StatusUnauthorized || p.Location != nil {
		t.Fatalf("a cloned authenticator's assertion (counter %d after %d) = %d %v", clone.count, alice.count, p.Status, p.Location)
	}
	if !strings.Contains(logs.String(), "signature counter went backwards") {
		t.Errorf("no WARN for a passkey whose counter went backwards:\n%s", logs)
	}
	otp3 = signIn(b3, "alice")
	_, form3 = passkeyForm(t, otp3)
	form3.Set("credential", alice.get(t, pageChallenge(t, otp3), e.alice.ID))
	codeFrom(t, b3.Post(e.issuer+"/login/otp", form3))
}

// TestPasskeys_Remove: a passkey is removed from the account page by a
// session that signed in with a second factor (a password-only session is
// refused by the same check as adding one: TestPasskeys_Attacks).
func TestPasskeys_Remove(t *testing.T) {
	e := newEnv(t, envOptions{factors: true, localhost: true})
	secret := e.webClient("web", nil)
	ba := e.browser()
	e.flow(ba, "web", secret, nil)
	key := newSoftKey(t, e.issuer, "localhost")
	if p := ba.addPasskey(key, "laptop"); p.Status != http.StatusSeeOther {
		t.Fatalf("add = %d", p.Status)
	}
	// Sign in with the passkey.
	b := e.browser()
	q, _ := factorQuery("web", url.Values{"prompt": {"login"}})
	otp := b.Submit(b.Authorize(q), url.Values{"username": {"alice"}, "password": {alicePassword}})
	_, form := passkeyForm(t, otp)
	form.Set("credential", key.get(t, pageChallenge(t, otp), e.alice.ID))
	codeFrom(t, b.Post(e.issuer+"/login/otp", form))
	acct := b.Get(e.issuer + "/account")
	i := strings.Index(acct.Body, `class="remove"`)
	if i < 0 {
		t.Fatalf("no remove form:\n%s", acct.Body)
	}
	start, end := strings.LastIndex(acct.Body[:i], "<form"), i+strings.Index(acct.Body[i:], "</form>")
	action, v := signettest.FormOf(t, page{Body: acct.Body[start:end]})
	if p := b.Post(e.issuer+action, v); p.Status != http.StatusSeeOther {
		t.Fatalf("remove = %d:\n%s", p.Status, p.Body)
	}
	if st, _ := e.mfa.Status(context.Background(), e.alice.ID); st.Passkeys != 0 {
		t.Fatalf("passkeys after removal: %d", st.Passkeys)
	}
}
