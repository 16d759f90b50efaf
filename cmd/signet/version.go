package main

import (
	"github.com/signet-auth/signet/metrics"

	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Stamped at link time by scripts/build.sh and the Dockerfile:
//
//	-ldflags "-X main.version=v1.2.3 -X main.commit=SHA -X main.date=RFC3339"
//
// These are the only package variables in the command: the linker can set
// nothing else, and nothing writes them at run time.
var (
	version string
	commit  string
	date    string
)

// buildInfo is what `signet version` prints and signet_build_info reports.
type buildInfo struct {
	Version   string
	Commit    string
	Date      string
	GoVersion string
	Platform  string
	Modified  bool // built from a work tree with uncommitted changes
}

// readBuildInfo prefers the -ldflags values and falls back to what the Go
// toolchain records in every binary (the module version for `go install
// module@version`, the VCS revision and time for a build in a git clone).
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	printVersion(stdout, readBuildInfo())
	return nil
}

func printVersion(w io.Writer, b buildInfo) {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "signet %s\ncommit:   %s\nbuilt:    %s\ngo:       %s\nplatform: %s\n", b.Version, commit, b.Date, b.GoVersion, b.Platform)
}

// buildLabels are the labels of signet_build_info.
func buildLabels() metrics.Build {
	bi := readBuildInfo()
	return metrics.Build{Version: bi.Version, Commit: bi.Commit, GoVersion: bi.GoVersion}
}
