package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// TestRun_Version: `signet version` and `signet --version` print the same
// four facts; without -ldflags the version is "devel" and the Go version is
// the toolchain's. (TestDockerfile checks the -ldflags stamps end to end.)
func TestRun_Version(t *testing.T) {
	var outputs []string
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), args, &out, &errOut); code != 0 {
			t.Fatalf("signet %v: exit %d, stderr %s", args, code, errOut.String())
		}
		for _, want := range []string{"signet devel\n", "\ncommit:   ", "\nbuilt:    ", "\ngo:       " + runtime.Version() + "\n", "\nplatform: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("signet %v = %q, want %q in it", args, out.String(), want)
			}
		}
		outputs = append(outputs, out.String())
	}
	if outputs[0] != outputs[1] || outputs[1] != outputs[2] {
		t.Errorf("version and --version differ: %q, %q, %q", outputs[0], outputs[1], outputs[2])
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"version", "extra"}, &out, &errOut); code != 2 {
		t.Errorf("signet version extra: exit %d, want 2", code)
	}
}

// TestReadBuildInfo_LinkerStamps: values set with -X win over the toolchain's.
func TestReadBuildInfo_LinkerStamps(t *testing.T) {
	saved := [3]string{version, commit, date}
	t.Cleanup(func() { version, commit, date = saved[0], saved[1], saved[2] })
	version, commit, date = "v1.2.3", "abc123", "2026-01-02T03:04:05Z"
	b := readBuildInfo()
	if b.Version != "v1.2.3" || b.Commit != "abc123" || b.Date != "2026-01-02T03:04:05Z" || b.GoVersion != runtime.Version() {
		t.Errorf("readBuildInfo() = %+v", b)
	}
}
