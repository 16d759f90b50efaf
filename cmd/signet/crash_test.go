package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storeopen"
)

// child is a `signet serve` subprocess: the test binary re-executing main.
type child struct {
	cmd  *exec.Cmd
	addr chan string // the listen address, once "signet serving" is logged
	done chan error
	logs *signettest.LogBuffer
}

func startChild(t *testing.T, args []string, env ...string) *child {
	t.Helper()
	return startCmd(t, exec.Command(os.Args[0], args...), append([]string{"SIGNET_TEST_RUN_MAIN=1"}, env...)...)
}

// startCmd starts cmd with env added and follows its JSON log on stderr.
func startCmd(t *testing.T, cmd *exec.Cmd, env ...string) *child {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addr: make(chan string, 1), done: make(chan error, 1), logs: &signettest.LogBuffer{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			fmt.Fprintf(c.logs, "%s\n", line)
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "signet serving" {
				c.addr <- rec.Addr
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.done <- nil // later kill calls return at once
}

// waitServing returns the child's address, or fails when it exits first.
func (c *child) waitServing(t *testing.T) string {
	t.Helper()
	select {
	case addr := <-c.addr:
		return addr
	case err := <-c.done:
		c.done <- err
		t.Fatalf("signet exited before serving: %v\n%s", err, c.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("signet did not start serving within a minute\n%s", c.logs)
	}
	return ""
}

// TestCrash_SIGKILLDuringRotation kills `signet serve` at random moments
// while it rotates every second, and after each kill checks the store with
// the server down: the file passes bbolt's consistency check, each algorithm
// has exactly one active key and one pending key, and every key the server
// published before the kill is still stored (max_ttl is an hour, so none is
// due for purging) and published again after the restart.
func TestCrash_SIGKILLDuringRotation(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "signet.yaml")
	algs := []string{"ES256", "EdDSA"}
	cfg := fmt.Sprintf(`data_dir: %s
http:
  addr: 127.0.0.1:0
keys:
  algorithms: [%s]
  rotation:
    schedule: "@every 1s"
  purge:
    schedule: "@every 1s"
jwks:
  max_age: 1s
tokens:
  max_ttl: 1h
log:
  level: info
`, filepath.Join(dir, "data"), strings.Join(algs, ", "))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfgPath}
	const kills = 50
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	published := map[string]bool{} // every kid ever seen in the JWKS
	actives := map[string]bool{}   // every kid ever seen active
	var killedAtStart int
	for i := range kills {
		c := startChild(t, args)
		if i > 0 && rng.IntN(10) == 0 {
			// Sometimes die during start-up (opening, loading, maybe
			// making keys), before serving anything.
			time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
			c.kill()
			killedAtStart++
		} else {
			base := "http://" + c.waitServing(t)
			set, _, _ := fetchJWKS(t, base)
			now := kids(set)
			for kid := range published {
				if _, ok := now[kid]; !ok {
					t.Fatalf("kill %d: %s was published before the restart and is gone after it", i, kid)
				}
			}
			// Keep reading the JWKS until a random moment, then kill.
			deadline := time.Now().Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
			for time.Now().Before(deadline) {
				set, _, _ := fetchJWKS(t, base)
				for kid := range kids(set) {
					published[kid] = true
				}
			}
			c.kill()
		}
		checkCrashedStore(t, i, filepath.Join(dir, "data", "signet.db"), algs, published, actives)
	}
	t.Logf("%d kills (%d during start-up); %d keys published, %d distinct active keys seen", kills, killedAtStart, len(published), len(actives))
	if len(actives) < 5*len(algs) {
		t.Errorf("only %d distinct active keys over the run: rotation did not run often enough for the test to mean anything", len(actives))
	}
}

func checkCrashedStore(t *testing.T, i int, path string, algs []string, published, actives map[string]bool) {
	t.Helper()
	ctx := context.Background()
	st, err := storeopen.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatalf("kill %d: open store: %v", i, err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		t.Fatalf("kill %d: bbolt check: %v", i, err)
	}
	infos, err := keys.List(ctx, st)
	if err != nil {
		t.Fatalf("kill %d: list keys: %v", i, err)
	}
	if len(infos) == 0 {
		return // killed before the first key set was committed: an empty store is consistent
	}
	stored := map[string]bool{}
	count := map[string]map[keys.State]int{}
	for _, k := range infos {
		stored[k.KID] = true
		if count[k.Alg] == nil {
			count[k.Alg] = map[keys.State]int{}
		}
		count[k.Alg][k.State]++
		if k.State == keys.StateActive {
			actives[k.KID] = true
		}
	}
	for _, alg := range algs {
		if count[alg][keys.StateActive] != 1 || count[alg][keys.StatePending] != 1 {
			t.Fatalf("kill %d: %s has %d active and %d pending keys, want 1 and 1: %v", i, alg, count[alg][keys.StateActive], count[alg][keys.StatePending], infos)
		}
	}
	for kid := range published {
		if !stored[kid] {
			t.Fatalf("kill %d: published key %s is missing from the store", i, kid)
		}
	}
}
