package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-auth/signet/jwks"
)

// freePort reserves a loopback port for a child process. The child binds it
// moments later; the issuer URL must name the port before the child starts.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tokenKID(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return hdr.Kid
}

// TestFleet_ZeroRejectionsAcrossRotations is the promise of Signet, end to
// end: a real `signet serve` process rotates every 3 seconds (JWKS max-age
// 1 s) for RS256, ES256 and EdDSA while clients fetch tokens without pause
// and four independent verifiers (four services) check every token. Across
// at least five rotations and one emergency revocation of a retired key, no
// valid token may be rejected, and once the verifiers have refreshed, a
// token signed by the revoked key must be.
func TestFleet_ZeroRejectionsAcrossRotations(t *testing.T) {
	algs := []string{"RS256", "ES256", "EdDSA"}
	dir := t.TempDir()
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfgPath := filepath.Join(dir, "signet.yaml")
	cfg := fmt.Sprintf(`issuer: %s
data_dir: %s
http:
  addr: 127.0.0.1:%d
keys:
  algorithms: [%s]
  rotation:
    schedule: "@every 3s"
jwks:
  max_age: 1s
tokens:
  default_ttl: 10m
  max_ttl: 1h
log:
  level: info
`, issuer, filepath.Join(dir, "data"), port, strings.Join(algs, ", "))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := initCmd(t, "--config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	admin := decodeSecret(t, out)
	secrets := map[string]string{}
	for _, alg := range algs {
		out, _, err := clientsCmd(t, "create", "--config", cfgPath, "--id", "svc-"+alg, "--alg", alg, "--scope", "read", "--audience", "api")
		if err != nil {
			t.Fatal(err)
		}
		secrets[alg] = decodeSecret(t, out).ClientSecret
	}
	child := startChild(t, []string{"serve", "--config", cfgPath})
	child.waitServing(t)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Four services, each with its own verifier, configured as a service
	// following this README would: refresh no slower than the rotation.
	var verifiers []*jwks.Verifier
	for range 4 {
		v, err := jwks.NewVerifier(ctx, issuer, jwks.WithAudience("api"), jwks.WithMinRefreshInterval(500*time.Millisecond))
		if err != nil {
			t.Fatalf("verifier: %v\n%s", err, child.logs)
		}
		t.Cleanup(func() { v.Close() })
		verifiers = append(verifiers, v)
	}

	var (
		mu        sync.Mutex
		kidsByAlg = map[string]map[string]bool{} // signing kids seen per alg
		sample    = map[string]string{}          // kid -> one token it signed
		revoked   atomic.Value                   // string: the revoked kid, once revoked
		issued    atomic.Int64
		checked   atomic.Int64
		rejected  atomic.Int64
		firstErr  atomic.Value
	)
	revoked.Store("")
	var wg sync.WaitGroup
	for _, alg := range algs {
		for range 2 { // two workers per client
			wg.Add(1)
			go func() {
				defer wg.Done()
				cc := clientcredentials.Config{ClientID: "svc-" + alg, ClientSecret: secrets[alg], TokenURL: issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
				for ctx.Err() == nil {
					tok, err := cc.Token(ctx)
					if err != nil {
						if ctx.Err() == nil {
							firstErr.CompareAndSwap(nil, fmt.Errorf("token %s: %w", alg, err))
						}
						return
					}
					issued.Add(1)
					kid := tokenKID(t, tok.AccessToken)
					mu.Lock()
					if kidsByAlg[alg] == nil {
						kidsByAlg[alg] = map[string]bool{}
					}
					kidsByAlg[alg][kid] = true
					if _, ok := sample[kid]; !ok {
						sample[kid] = tok.AccessToken
					}
					mu.Unlock()
					for i, v := range verifiers {
						_, err := v.Verify(ctx, tok.AccessToken)
						checked.Add(1)
						if err != nil && kid != revoked.Load().(string) {
							rejected.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Errorf("verifier %d rejected a fresh %s token (kid %s): %w", i, alg, kid, err))
						}
					}
				}
			}()
		}
	}

	rotations := func() int { // fewest distinct signing keys over the algorithms, minus the first
		mu.Lock()
		defer mu.Unlock()
		least := -1
		for _, alg := range algs {
			if n := len(kidsByAlg[alg]) - 1; least < 0 || n < least {
				least = n
			}
		}
		return least
	}
	deadline := time.Now().Add(45 * time.Second)
	waitFor := func(what string, cond func() bool) {
		for !cond() {
			if time.Now().After(deadline) {
				cancel()
				wg.Wait()
				t.Fatalf("timed out waiting for %s (rotations seen: %d, tokens: %d)\n%s", what, rotations(), issued.Load(), child.logs)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition with a deadline, not a synchronisation
		}
	}

	// Emergency revocation of a retired key after two rotations.
	waitFor("two rotations", func() bool { return rotations() >= 2 })
	t.Setenv("SIGNET_CLIENT_ID", admin.ClientID)
	t.Setenv("SIGNET_CLIENT_SECRET", admin.ClientSecret)
	ac, err := newAdminClient(ctx, issuer, "")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Keys []struct{ KID, Alg, State string }
	}
	if err := ac.Do(ctx, http.MethodGet, "/admin/keys", nil, &list); err != nil {
		t.Fatal(err)
	}
	var victim, victimToken string
	mu.Lock()
	for _, k := range list.Keys {
		if k.State == "retired" && sample[k.KID] != "" {
			victim, victimToken = k.KID, sample[k.KID]
			break
		}
	}
	mu.Unlock()
	if victim == "" {
		t.Fatalf("no retired key that signed a token: %+v", list.Keys)
	}
	for i, v := range verifiers {
		if _, err := v.Verify(ctx, victimToken); err != nil {
			t.Fatalf("before revocation, verifier %d rejects a token of retired key %s: %v", i, victim, err)
		}
	}
	revoked.Store(victim)
	if err := ac.Do(ctx, http.MethodPost, "/admin/keys/"+victim+"/revoke", nil, nil); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	for i, v := range verifiers {
		waitFor(fmt.Sprintf("verifier %d to drop revoked key %s", i, victim), func() bool {
			_, err := v.Verify(ctx, victimToken)
			return errors.Is(err, jwks.ErrUnknownKey)
		})
	}
	refreshedIn := time.Since(revokedAt)

	waitFor("five rotations", func() bool { return rotations() >= 5 })
	for i, v := range verifiers {
		if err := v.Healthy(); err != nil {
			t.Errorf("verifier %d unhealthy: %v", i, err)
		}
	}
	cancel()
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		t.Errorf("first failure: %v", err)
	}
	t.Logf("%d rotations per algorithm (at least), %d tokens issued, %d verifications by %d verifiers, %d valid tokens rejected; revoked key %s rejected by every verifier %s after the revocation",
		rotations(), issued.Load(), checked.Load(), len(verifiers), rejected.Load(), victim, refreshedIn.Round(time.Millisecond))
	if rejected.Load() != 0 {
		t.Errorf("%d valid tokens were rejected", rejected.Load())
	}
	if issued.Load() < 100 {
		t.Errorf("only %d tokens issued: the load was too thin to mean anything", issued.Load())
	}
}
