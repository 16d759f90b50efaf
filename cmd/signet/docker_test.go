package main

import (
	"debug/elf"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dockerfile is the parts of the Dockerfile the image depends on.
type dockerfile struct {
	build      string            // the RUN line that builds the signet binary
	env        map[string]string // ENV of the final stage
	user       string
	volume     string
	entrypoint []string
	cmd        []string
	health     []string // HEALTHCHECK CMD, exec form
}

// parseDockerfile reads ../../Dockerfile with just enough of the syntax for
// our own file: comments, backslash continuations, ENV K=V pairs, JSON
// ENTRYPOINT/CMD. No Docker engine runs here, so the test checks what the
// image would run instead of running the image.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			cur += strings.TrimSuffix(l, `\`) + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	d := dockerfile{env: map[string]string{}}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			d.env = map[string]string{} // only the final stage counts
		case "RUN":
			if strings.Contains(rest, "scripts/build.sh") {
				d.build = rest
			}
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				d.env[k] = v
			}
		case "USER":
			d.user = rest
		case "VOLUME":
			d.volume = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %s: %v", rest, err)
			}
		case "HEALTHCHECK":
			_, exec, ok := strings.Cut(rest, "CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK %s: want the CMD form", rest)
			}
			if err := json.Unmarshal([]byte(exec), &d.health); err != nil {
				t.Fatalf("HEALTHCHECK CMD %s: want the exec (JSON) form: %v", exec, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &d.cmd); err != nil {
				t.Fatalf("CMD %s: %v", rest, err)
			}
		}
	}
	return d
}

// TestDockerfile builds the binary exactly as the Dockerfile does, checks
// that it is static (the final stage is scratch: no libc, no loader), and
// runs it as the image would: `signet serve` with the image's environment.
func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if d.user == "" || strings.HasPrefix(d.user, "0") || strings.HasPrefix(d.user, "root") {
		t.Errorf("USER %q: the image must not run as root", d.user)
	}
	if d.volume != d.env["SIGNET_DATA_DIR"] {
		t.Errorf("VOLUME %q is not SIGNET_DATA_DIR %q: the data would not persist", d.volume, d.env["SIGNET_DATA_DIR"])
	}
	if host, _, err := net.SplitHostPort(d.env["SIGNET_ADDR"]); err != nil || host != "0.0.0.0" {
		t.Errorf("SIGNET_ADDR %q: a container must listen on 0.0.0.0", d.env["SIGNET_ADDR"])
	}
	if got := append(d.entrypoint[1:], d.cmd...); len(got) != 1 || got[0] != "serve" {
		t.Errorf("ENTRYPOINT+CMD run %v, want signet serve", append(d.entrypoint, d.cmd...))
	}

	// "OUT=/out/signet scripts/build.sh": run it with OUT pointing here and
	// the version stamps the image would get from --build-arg.
	var env []string
	script := ""
	for _, f := range strings.Fields(d.build) {
		if k, _, ok := strings.Cut(f, "="); ok && k != "" && script == "" {
			if k != "OUT" {
				env = append(env, f)
			}
			continue
		}
		script = f
		break
	}
	if script != "scripts/build.sh" {
		t.Fatalf("the Dockerfile does not build with scripts/build.sh: %q", d.build)
	}
	requireProgram(t, "bash", script+" is a bash script (#!/usr/bin/env bash), as the Dockerfile's build stage runs it")
	bin := filepath.Join(t.TempDir(), "signet")
	build := exec.Command(filepath.Join("..", "..", script))
	build.Env = append(os.Environ(), env...)
	build.Env = append(build.Env, "OUT="+bin, "VERSION=v0.0.0-dockertest", "COMMIT=0123abcd", "DATE=2026-01-02T03:04:05Z")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("signet version: %v\n%s", err, out)
	}
	for _, want := range []string{"signet v0.0.0-dockertest\n", "commit:   0123abcd\n", "built:    2026-01-02T03:04:05Z\n", "go:       go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("signet version of the image's build = %q, want %q in it", out, want)
		}
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary needs a dynamic loader; it cannot run on scratch")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v; it cannot run on scratch", libs)
	}

	// Run it with the image's environment (port 0 instead of 8080, a temp
	// dir for the volume) and check it serves.
	c := startCmd(t, exec.Command(bin, d.cmd...),
		"SIGNET_ADDR="+strings.TrimSuffix(d.env["SIGNET_ADDR"], ":8080")+":0",
		"SIGNET_DATA_DIR="+t.TempDir())
	addr := c.waitServing(t)
	_, port, _ := net.SplitHostPort(addr)
	set, _, _ := fetchJWKS(t, "http://127.0.0.1:"+port)
	if set.Len() < 2 {
		t.Errorf("the image's server publishes %d keys", set.Len())
	}

	// The HEALTHCHECK, run as Docker would: the image's binary and
	// environment (SIGNET_ADDR on the wildcard address).
	if len(d.health) < 2 || d.health[0] != d.entrypoint[0] {
		t.Fatalf("HEALTHCHECK CMD %v: want %s health", d.health, d.entrypoint[0])
	}
	hc := exec.Command(bin, d.health[1:]...)
	hc.Env = append(os.Environ(), "SIGNET_ADDR="+strings.TrimSuffix(d.env["SIGNET_ADDR"], ":8080")+":"+port, "SIGNET_DATA_DIR="+t.TempDir())
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("HEALTHCHECK %v against the running server: %v\n%s", d.health, err, out)
	}
}

// requireProgram fails the test with a plain reason when a program it runs
// is not on PATH. A machine with Go has sh and bash (/bin), so this fails
// only where PATH was narrowed to Go alone; the message says what to add
// rather than leaving an exec error to decode.
func requireProgram(t *testing.T, name, why string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("this test needs %s on PATH (%s): %v; add /bin (or wherever %s is) to PATH", name, why, err, name)
	}
}
