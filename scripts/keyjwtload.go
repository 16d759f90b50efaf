//go:build ignore

// keyjwtload measures client_credentials through `signet serve` over
// loopback with client-secret authentication (HTTP Basic) and with an
// ES256 private_key_jwt assertion, for tokens signed with RS256 and ES256.
// It builds signet, starts it on a fresh bolt data dir, and alternates
// rounds of the two modes; per round it reports tokens/s and the server
// process's CPU per token (from /proc/PID/stat), the figure to compare on a
// shared machine. Assertions are made before each round, so the load
// generator signs nothing while it runs.
//
// Usage: go run scripts/keyjwtload.go [-rounds 5] [-dur 5s] [-c 32]
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const addr = "127.0.0.1:18091"

var base = "http://" + addr

func main() {
	rounds := flag.Int("rounds", 5, "rounds per mode")
	dur := flag.Duration("dur", 5*time.Second, "length of a round")
	conns := flag.Int("c", 32, "concurrent connections")
	flag.Parse()
	work, err := os.MkdirTemp("", "keyjwtload")
	check(err)
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "signet")
	run(exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/signet"))
	env := append(os.Environ(), "SIGNET_DATA_DIR="+filepath.Join(work, "data"), "SIGNET_ADDR="+addr, "SIGNET_ISSUER="+base,
		"SIGNET_KEYS_ALGORITHMS=RS256,ES256", "SIGNET_LOG_LEVEL=warn")

	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	priv, _ := jwk.FromRaw(raw)
	_ = priv.Set(jwk.KeyIDKey, "load")
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwksFile := filepath.Join(work, "jwks.json")
	b, _ := json.Marshal(set)
	check(os.WriteFile(jwksFile, b, 0o600))
	secrets := map[string]string{}
	for _, alg := range []string{"RS256", "ES256"} {
		out := output(env, bin, "clients", "create", "--id", "secret-"+alg, "--alg", alg, "--scope", "load", "--audience", "api")
		var s struct {
			ClientSecret string `json:"client_secret"`
		}
		check(json.Unmarshal(out, &s))
		secrets[alg] = s.ClientSecret
		output(env, bin, "clients", "create", "--id", "jwt-"+alg, "--alg", alg, "--scope", "load", "--audience", "api", "--jwks-file", jwksFile, "--auth-signing-alg", "ES256")
	}
	srv := exec.Command(bin, "serve")
	srv.Env = env
	srv.Stderr = os.Stderr
	check(srv.Start())
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if i > 100 {
			log.Fatal("signet did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	for _, l := range strings.Split(string(cpuinfo), "\n") {
		if strings.HasPrefix(l, "model name") {
			model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
			break
		}
	}
	fmt.Printf("machine: %s, %d cores; %d rounds of %s per mode, %d connections\n", model, numCPU(), *rounds, *dur, *conns)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns * 2, MaxIdleConns: *conns * 2}}
	jti := 0
	for _, alg := range []string{"RS256", "ES256"} {
		var ratios, secretRates, jwtRates, secretCPU, jwtCPU []float64
		for r := 0; r < *rounds; r++ {
			var res [2]result
			for m, mode := range []string{"secret", "jwt"} {
				var bodies []string
				auth := ""
				if mode == "secret" {
					auth = "Basic " + base64.StdEncoding.EncodeToString([]byte("secret-"+alg+":"+secrets[alg]))
				} else {
					n := 20000
					if alg == "RS256" {
						n = 8000
					}
					bodies = make([]string, n)
					now := time.Now().Unix()
					for i := range bodies {
						jti++
						claims, _ := json.Marshal(map[string]any{"iss": "jwt-" + alg, "sub": "jwt-" + alg, "aud": base, "iat": now, "exp": now + 240, "jti": strconv.Itoa(jti)})
						s, err := jws.Sign(claims, jws.WithKey(jwa.ES256, priv))
						check(err)
						bodies[i] = url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {string(s)}}.Encode()
					}
				}
				res[m] = load(client, srv.Process.Pid, *dur, *conns, auth, bodies)
				fmt.Printf("%s tokens, %-6s round %d: %7.0f tokens/s, server CPU %6.1f µs/token, failed %d%s\n", alg, mode, r+1, res[m].rate, res[m].cpuPerToken, res[m].failed, res[m].note)
			}
			secretRates, jwtRates = append(secretRates, res[0].rate), append(jwtRates, res[1].rate)
			secretCPU, jwtCPU = append(secretCPU, res[0].cpuPerToken), append(jwtCPU, res[1].cpuPerToken)
			ratios = append(ratios, res[0].cpuPerToken/res[1].cpuPerToken)
		}
		fmt.Printf("%s tokens: median rate secret %.0f/s, assertion %.0f/s (rate ratio %.2f); median server CPU secret %.1f µs, assertion %.1f µs; per-round CPU ratio secret/assertion %v, median %.2f\n",
			alg, median(secretRates), median(jwtRates), median(jwtRates)/median(secretRates), median(secretCPU), median(jwtCPU), fmtList(ratios), median(ratios))
	}
}

type result struct {
	rate, cpuPerToken float64
	failed            int64
	note              string
}

// load posts token requests for dur on conns connections: with auth and
// a fixed body, or one body of bodies per request (each used once).
func load(client *http.Client, pid int, dur time.Duration, conns int, auth string, bodies []string) result {
	var ok, failed, next atomic.Int64
	var ranOut atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	cpu0 := procCPU(pid)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				body := "grant_type=client_credentials"
				if bodies != nil {
					i := next.Add(1) - 1
					if int(i) >= len(bodies) {
						ranOut.Store(true)
						return
					}
					body = bodies[i]
				}
				req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu := procCPU(pid) - cpu0
	r := result{rate: float64(ok.Load()) / el.Seconds(), failed: failed.Load()}
	if ok.Load() > 0 {
		r.cpuPerToken = float64(cpu.Microseconds()) / float64(ok.Load())
	}
	if ranOut.Load() {
		r.note = fmt.Sprintf(" (ran out of assertions after %s)", el.Round(time.Millisecond))
	}
	return r
}

// procCPU is the user+system CPU time of pid (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func fmtList(v []float64) string {
	var p []string
	for _, x := range v {
		p = append(p, strconv.FormatFloat(x, 'f', 2, 64))
	}
	return strings.Join(p, ", ")
}

func run(cmd *exec.Cmd) {
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	check(cmd.Run())
}

func output(env []string, bin string, args ...string) []byte {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = io.Discard
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s %v: %v", bin, args, err)
	}
	return out
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
