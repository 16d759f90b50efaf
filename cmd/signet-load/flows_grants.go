package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"
)

const (
	wlGrants = "ES256 access token, by grant"

	adminClient        = "load-admin"
	exchangeClient     = "svc-a"
	exchangeTarget     = "svc-b"
	workloadClient     = "workload"
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantJWTBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	fedIssuerName      = "spiffe://signet-load"
	fedSubject         = "spiffe://signet-load/ns/load/sa/worker"
	fedKID             = "load-1"
)

// fedIssuer is a federated workload issuer whose key the tool holds: its
// JWK Set is a file (federation.issuers[].jwks_file), its tokens are
// SPIFFE JWT-SVID-shaped (ES256, no jti, so each may be presented again
// until exp).
type fedIssuer struct {
	key      *ecdsa.PrivateKey
	jwksFile string
}

func newFedIssuer(jwksFile string) (*fedIssuer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	xy := pub.Bytes()[1:] // uncompressed point: 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	set, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": fedKID, "alg": "ES256", "use": "sig",
		"x": b64(xy[:32]), "y": b64(xy[32:])}}})
	if err := os.WriteFile(jwksFile, set, 0o600); err != nil {
		return nil, err
	}
	return &fedIssuer{key: k, jwksFile: jwksFile}, nil
}

// token is a JWT-SVID for fedSubject audienced to Signet, valid 10 minutes.
func (fi *fedIssuer) token(aud string) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": fedKID, "typ": "JWT"})
	now := time.Now()
	c, _ := json.Marshal(map[string]any{"iss": fedIssuerName, "sub": fedSubject, "aud": aud, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	input := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, fi.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig), nil
}

// grantsScenario alternates three ways of getting an ES256 access token:
// client_credentials with a secret, RFC 8693 token exchange of alice's
// access token (svc-a exchanges it into svc-b), and the RFC 7523 jwt-bearer
// grant on a federated workload token.
func grantsScenario(ctx context.Context, fl *flowLab) ([]workload, error) {
	cc, ex, jb := fl.target("client_credentials (client secret)"), fl.target("token exchange (RFC 8693, user's access token)"),
		fl.target("jwt-bearer (RFC 7523, federated JWT-SVID, ES256, no jti)")
	fl.benches[key{wlGrants, cc.name}] = "exchange `BenchmarkTokenExchange/ES256/client_credentials`; authority `BenchmarkClientCredentials/ES256`"
	fl.benches[key{wlGrants, ex.name}] = "exchange `BenchmarkTokenExchange/ES256/exchange`"
	fl.benches[key{wlGrants, jb.name}] = "federation `BenchmarkFederatedClientCredentials/spiffe-es256-grant`"
	d := fl.d
	// The subject token and the assertion, made before each window (not counted).
	var mu sync.Mutex
	var subject, assertion string
	prepare := func(ctx context.Context, t *target, _ int) error {
		mu.Lock()
		defer mu.Unlock()
		switch t {
		case ex:
			a, err := want200(do(ctx, fl.c, "POST", d.urls[0]+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {userName},
				"password": {userPass}, "scope": {flowScope}}, exchangeClient, d.secrets[exchangeClient]))
			if err != nil {
				return fmt.Errorf("subject token: %w", err)
			}
			subject = a.str("access_token")
		case jb:
			var err error
			assertion, err = fl.fed.token(d.issuer)
			return err
		}
		return nil
	}
	return []workload{{name: wlGrants, targets: []*target{cc, ex, jb}, prepare: prepare, op: func(t *target) func(ctx context.Context, w int) error {
		return func(ctx context.Context, w int) error {
			mu.Lock()
			sub, as := subject, assertion
			mu.Unlock()
			var a answer
			var err error
			switch t {
			case cc:
				a, err = want200(d.token(ctx, t.c, t.base(w), "ES256"))
			case ex:
				a, err = want200(do(ctx, t.c, "POST", t.base(w)+"/oauth2/token", url.Values{"grant_type": {grantTokenExchange},
					"subject_token": {sub}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {exchangeTarget}},
					exchangeClient, d.secrets[exchangeClient]))
			default:
				a, err = want200(do(ctx, t.c, "POST", t.base(w)+"/oauth2/token", url.Values{"grant_type": {grantJWTBearer},
					"assertion": {as}, "client_id": {workloadClient}, "scope": {flowScope}}, "", ""))
			}
			if err == nil && a.str("access_token") == "" {
				err = fmt.Errorf("no access token in %s", a.body)
			}
			return err
		}
	}}}, nil
}
