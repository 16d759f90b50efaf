// Package modtest builds a throwaway consumer module in a test's temporary
// directory and runs go mod tidy in it, to show what a service that
// imports the jwks modules gets in its go.mod and go.sum.
package modtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Consumer is a tidied consumer module.
type Consumer struct {
	GoMod, GoSum string
}

// Tidy writes a module example.com/consumer with the go directive goVersion,
// main.go as its only file, and a require plus replace for each entry of
// local (module path to directory), then runs go mod tidy and go build in
// it. It works offline when the module cache holds the dependencies (as
// after go mod download in the jwks modules): checksums come from the
// cache, not the checksum database.
func Tidy(t testing.TB, goVersion string, mainGo []byte, local map[string]string) Consumer {
	t.Helper()
	dir := t.TempDir()
	var mod strings.Builder
	mod.WriteString("module example.com/consumer\n\ngo " + goVersion + "\n")
	for path, d := range local {
		abs, err := filepath.Abs(d)
		if err != nil {
			t.Fatal(err)
		}
		mod.WriteString("\nrequire " + path + " v0.0.0-00010101000000-000000000000\n")
		mod.WriteString("replace " + path + " => " + abs + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), mainGo, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false", "GONOSUMDB=*", "GOTOOLCHAIN=local")
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", os.DevNull, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the consumer module: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(b)
	}
	return Consumer{GoMod: read("go.mod"), GoSum: read("go.sum")}
}

// Modules lists the module paths named in go.sum.
func (c Consumer) Modules() []string {
	var mods []string
	for _, line := range strings.Split(c.GoSum, "\n") {
		if f := strings.Fields(line); len(f) > 0 && (len(mods) == 0 || mods[len(mods)-1] != f[0]) {
			mods = append(mods, f[0])
		}
	}
	return mods
}
