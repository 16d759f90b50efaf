//go:build !browser

package main

import "testing"

// TestBrowserLogin needs Chromium, which a machine with Go alone lacks, so
// the real test (browser_test.go) is built only with -tags browser. Without
// the tag this stand-in says so in one line (go test -v shows it), so the
// test is never left out silently.
func TestBrowserLogin(t *testing.T) {
	t.Skip("the browser login test needs Chromium: run it with `go test -tags browser -run TestBrowserLogin ./cmd/signet` (.ci/run does)")
}
