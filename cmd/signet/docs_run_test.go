package main

import (
	"bytes"
	"fmt"
	"github.com/signet-auth/signet/datadir"
	"github.com/signet-auth/signet/internal/signettest"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmeNewcomerPath runs the README's first screen as a newcomer
// would: the first block starts `signet serve` on an empty directory, the
// second, pasted into a second shell, creates a client through that server
// with the credentials its first start wrote, gets a token, verifies it,
// rotates, verifies again, introspects, revokes and introspects. The
// server is one process from start to end, never restarted. The only
// change to the text is the port: a free one instead of 8080.
func TestReadmeNewcomerPath(t *testing.T) {
	requireProgram(t, "sh", "the README's lines are shell lines, run as a reader's shell would run them")
	blocks := readmeStartBlocks(t)
	if len(blocks) < 2 {
		t.Fatalf("README's Start section has %d shell blocks, want the serve block and the newcomer path", len(blocks))
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary is signet (TestMain runs main with
	// SIGNET_TEST_RUN_MAIN=1), so the lines run this tree's code.
	copyFile(t, os.Args[0], filepath.Join(bin, "signet"), 0o755)
	if _, err := exec.LookPath("curl"); err != nil {
		// A machine with Go alone has no curl: the test binary stands in
		// for the few options the README uses (TestMain, runCurl).
		copyFile(t, os.Args[0], filepath.Join(bin, "curl"), 0o755)
		t.Log("no curl on this machine: the test's own stand-in (runCurl) runs the curl lines")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	env := append(cleanEnv(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "SIGNET_TEST_RUN_MAIN=1")

	// Block 1: install (the test built the binary) and serve.
	var server *exec.Cmd
	var serverLog signettest.LogBuffer
	for _, c := range shellCommands("```sh\n" + blocks[0] + "```") {
		switch {
		case strings.HasPrefix(c.text, "go install ./cmd/signet"):
			// done above: bin/signet is this tree's signet
		case strings.HasPrefix(c.text, "signet serve"):
			server = exec.Command("sh", "-c", "exec "+stripComment(c.text))
			server.Dir = dir
			server.Env = append(env, "SIGNET_ADDR=127.0.0.1:"+port)
			server.Stdout, server.Stderr = &serverLog, &serverLog
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				server.Process.Signal(os.Interrupt)
				server.Wait()
			})
		default:
			t.Fatalf("README Start block 1 has a line the test does not know how to run: %s", c.text)
		}
	}
	if server == nil {
		t.Fatal("README Start block 1 starts no signet serve")
	}
	base := "http://localhost:" + port
	waitReady(t, base+"/readyz", &serverLog)
	pid := server.Process.Pid

	// Block 2, pasted into another shell in the same directory.
	script := strings.ReplaceAll(blocks[1], "localhost:8080", "localhost:"+port)
	sh := exec.Command("sh", "-e", "-x", "-c", script)
	sh.Dir = dir
	sh.Env = env
	var out, errOut bytes.Buffer
	sh.Stdout, sh.Stderr = &out, &errOut
	if err := sh.Run(); err != nil {
		t.Fatalf("the newcomer path failed: %v\nstdout:\n%s\nstderr (sh -x):\n%s\nserver log:\n%s", err, &out, &errOut, &serverLog)
	}
	got := out.String()
	for _, want := range []string{`"sub": "my-service"`, `"iss": "` + base + `"`, `"active":true`, `{"active":false}`} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s:\n%s\nstderr:\n%s", want, got, &errOut)
		}
	}
	if strings.Count(got, `"sub": "my-service"`) != 2 {
		t.Errorf("want two verified claim sets (before and after the rotation):\n%s", got)
	}
	if i, j := strings.Index(got, `"active":true`), strings.LastIndex(got, `{"active":false}`); i < 0 || j < i {
		t.Errorf("introspection did not go from active to inactive across the revocation:\n%s", got)
	}
	if server.ProcessState != nil || server.Process.Pid != pid {
		t.Errorf("the server did not run throughout:\n%s", &serverLog)
	}
	if strings.Contains(serverLog.String(), "client_secret") {
		t.Errorf("the server logged a secret outside --dev:\n%s", &serverLog)
	}
	// The credentials file is the owner's alone.
	if info, err := os.Stat(filepath.Join(dir, "data", datadir.AdminCredentialsFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("admin credentials file: %v, %v", info, err)
	}
}

// readmeStartBlocks returns the shell blocks of the README's "## Start"
// section, up to the next heading.
func readmeStartBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## Start\n")
	if !ok {
		t.Fatal("README has no ## Start section")
	}
	if i := strings.Index(rest, "\n#"); i >= 0 {
		rest = rest[:i]
	}
	var blocks []string
	for {
		_, after, ok := strings.Cut(rest, "```sh\n")
		if !ok {
			return blocks
		}
		body, tail, _ := strings.Cut(after, "```")
		blocks = append(blocks, body)
		rest = tail
	}
}

// stripComment drops a trailing shell comment from a line without quotes.
func stripComment(line string) string {
	if i := strings.Index(line, " #"); i >= 0 {
		return strings.TrimSpace(line[:i])
	}
	return line
}

// cleanEnv is the environment without SIGNET_* variables, so that nothing
// of the test run's own settings (admin credentials, a KEK) reaches the
// newcomer's shell.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGNET_") && !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return out
}

func waitReady(t *testing.T, url string, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200:\n%s", url, log)
}

// runCurl is the stand-in for curl on a machine without it: the options
// the README's lines use (-s, -u USER:PASS, -d DATA, -H HEADER, -X METHOD,
// one URL), the body on stdout, exit 0 whatever the status, as curl does.
func runCurl(args []string, stdout, stderr io.Writer) int {
	method, user := "", ""
	var data []string
	header := http.Header{}
	var target string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			i++
			if i < len(args) {
				return args[i]
			}
			return ""
		}
		switch a {
		case "-s", "--silent":
		case "-u", "--user":
			user = next()
		case "-d", "--data":
			data = append(data, next())
		case "-H", "--header":
			k, v, _ := strings.Cut(next(), ":")
			header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		case "-X", "--request":
			method = next()
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr, "curl stand-in: option %s is not supported\n", a)
				return 2
			}
			target = a
		}
	}
	if _, err := url.Parse(target); err != nil || target == "" {
		fmt.Fprintf(stderr, "curl stand-in: no URL\n")
		return 3
	}
	var body io.Reader
	if data != nil {
		body = strings.NewReader(strings.Join(data, "&"))
		if method == "" {
			method = http.MethodPost
		}
		if header.Get("Content-Type") == "" {
			header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 3
	}
	req.Header = header
	if name, pass, ok := strings.Cut(user, ":"); ok {
		req.SetBasicAuth(name, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 7
	}
	defer resp.Body.Close()
	io.Copy(stdout, resp.Body)
	return 0
}
