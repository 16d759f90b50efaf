//go:build !browser

package main

// browserNote is printed once by TestMain when the browser tests
// (browser_test.go, device_test.go: TestBrowserLogin, TestBrowserDeviceFlow)
// are not built: they need Chromium, which a machine with Go alone lacks, so
// they are built only with -tags browser. Saying so in the output keeps them
// from being left out silently, without a skipped test that proves nothing.
const browserNote = "cmd/signet: the browser tests (TestBrowserLogin, TestBrowserDeviceFlow, TestBrowserSecondFactor, TestBrowserPasskey, TestBrowserUpstream) need Chromium and are built only with -tags browser: go test -tags browser -run TestBrowser ./cmd/signet (.ci/run does)"
