package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// proc is a child process: a signet replica, a baseline or an etcd member.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string // stderr and stdout go here, appended across restarts

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newProc(name, log, bin string, env []string, args ...string) *proc {
	return &proc{name: name, bin: bin, args: args, env: env, log: log}
}

// start starts (or restarts) the process.
func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: log: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Children die with the tool, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// running reports whether the process is started and has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig and, for SIGKILL and SIGTERM, waits for the exit (at
// most 20 s, then SIGKILL).
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *proc) kill() { p.signal(syscall.SIGKILL) }

// cpu is the CPU time (user + system, all threads) the running process has
// used, from /proc/<pid>/stat.
func (p *proc) cpu() (time.Duration, error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("%s: not started", p.name)
	}
	return procCPU(cmd.Process.Pid)
}

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time (Linux /proc needed): %w", err)
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// cpuOf sums the CPU time of procs.
func cpuOf(ps []*proc) (time.Duration, error) {
	var sum time.Duration
	for _, p := range ps {
		c, err := p.cpu()
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// freeAddr returns 127.0.0.1:PORT with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitOK polls url until it answers 200, p exits, or timeout passes.
func waitOK(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p != nil && !p.running() {
			return fmt.Errorf("%s exited before %s answered 200 (log: %s):\n%s", p.name, url, p.log, tail(p.log, 20))
		}
		if time.Now().After(deadline) {
			if p == nil {
				return fmt.Errorf("%s did not answer 200 within %s", url, timeout)
			}
			return fmt.Errorf("%s did not answer 200 within %s (log: %s)", url, timeout, p.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lab is one run's working directory, binaries and children.
type lab struct {
	dir    string
	signet string // the signet binary
	self   string // this binary, for the baseline and etcd-member children
	kek    string // SIGNET_KEK for every signet process (base64 of 32 bytes)

	mu    sync.Mutex
	procs []*proc
}

func newLab(ctx context.Context, signetBin string) (*lab, error) {
	dir, err := os.MkdirTemp("", "signet-load-")
	if err != nil {
		return nil, err
	}
	l := &lab{dir: dir}
	if l.self, err = os.Executable(); err != nil {
		return nil, err
	}
	var k [32]byte
	_, _ = rand.Read(k[:])
	l.kek = base64.StdEncoding.EncodeToString(k[:])
	if signetBin == "" {
		signetBin = filepath.Join(dir, "signet")
		fmt.Fprintln(os.Stderr, "signet-load: building ./cmd/signet (go build; -signet PATH to skip)")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", signetBin, "github.com/signet-auth/signet/cmd/signet")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("build signet (run from the repository, or pass -signet PATH): %w", err)
		}
	}
	if l.signet, err = filepath.Abs(signetBin); err != nil {
		return nil, err
	}
	return l, nil
}

// add registers p to be killed by close.
func (l *lab) add(p *proc) *proc {
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// close kills every child and removes the directory unless keep.
func (l *lab) close(keep bool) {
	l.mu.Lock()
	ps := l.procs
	l.mu.Unlock()
	for _, p := range ps {
		p.kill()
	}
	if keep {
		fmt.Fprintln(os.Stderr, "signet-load: logs and data kept in", l.dir)
		return
	}
	os.RemoveAll(l.dir)
}

// signetCmd runs an offline signet command and returns its stdout.
func (l *lab) signetCmd(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, l.signet, args...)
	cmd.Env = append(os.Environ(), "SIGNET_KEK="+l.kek)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("signet %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// createClient runs `signet clients create` and returns the secret.
func (l *lab) createClient(ctx context.Context, cfg string, args ...string) (string, error) {
	out, err := l.signetCmd(ctx, "", append([]string{"clients", "create", "--config", cfg, "--json"}, args...)...)
	if err != nil {
		return "", err
	}
	var r struct {
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.ClientSecret == "" {
		return "", fmt.Errorf("clients create: no secret in %q", out)
	}
	return r.ClientSecret, nil
}
