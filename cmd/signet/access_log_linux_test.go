package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServe_AccessLogBufferedSIGTERM runs `signet serve` as a process with
// its log on a pipe, at the default log.access, and makes requests that
// each get an access log line. The lines cost no write system call each
// (the process's write count from /proc grows by about one per request,
// the response, where an unbuffered log made it two), and after SIGTERM
// every request's line is in the log, none lost in the buffer.
func TestServe_AccessLogBufferedSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "signet.yaml")
	cfg := fmt.Sprintf("data_dir: %s\nhttp:\n  addr: 127.0.0.1:0\nkeys:\n  algorithms: [ES256]\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, []string{"serve", "--config", cfgPath})
	base := "http://" + c.waitServing(t)
	pid := c.cmd.Process.Pid
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Request-Id")
	}
	get("/.well-known/openid-configuration") // the connection, warm
	const n = 300
	ids := make([]string, 0, n)
	before := writeSyscalls(t, pid)
	for i := range n {
		path := "/.well-known/openid-configuration"
		if i%3 == 0 {
			path = "/no-such-page" // a 404: logged at every log.access setting
		}
		id := get(path)
		if id == "" {
			t.Fatal("no X-Request-Id")
		}
		ids = append(ids, id)
	}
	writes := writeSyscalls(t, pid) - before
	t.Logf("%d requests, %d write system calls (%.2f per request)", n, writes, float64(writes)/n)
	if writes > n*3/2 {
		t.Errorf("%d requests made %d write system calls: the access log writes per line", n, writes)
	}

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	logged := map[string]bool{}
	for _, line := range strings.Split(c.logs.String(), "\n") {
		var rec struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" {
			logged[rec.RequestID] = true
		}
	}
	missing := 0
	for _, id := range ids {
		if !logged[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d access log lines lost at SIGTERM", missing, n)
	}
	if !strings.Contains(c.logs.String(), `"msg":"shutting down"`) {
		t.Error(`no "shutting down" line`)
	}
}

// writeSyscalls is the number of write system calls process pid has made.
func writeSyscalls(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no syscw in /proc/%d/io", pid)
	return 0
}
