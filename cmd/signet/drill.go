package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signet-auth/signet/drill"
)

// runDrill is `signet drill --issuer URL`: the rotation drill.
func runDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drill", stderr)
	issuer := fs.String("issuer", "", "issuer URL of the running signet (required)")
	adminURL := fs.String("admin-url", "", "admin API URL when http.admin_addr is set (default: the issuer)")
	duration := fs.Duration("duration", 30*time.Second, "how long to issue and verify tokens; the rotation happens at a quarter of it")
	force := fs.Bool("force", false, "rotate even if the pending key was published for less than jwks.max_age (expect rejections then)")
	revoke := fs.Bool("revoke-retired", false, "after the rotation, revoke the key it retired, of every algorithm (an emergency revocation)")
	workers := fs.Int("workers", 4, "concurrent token requests")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *issuer == "" || fs.NArg() != 0 {
		return usageError{"usage: signet drill --issuer URL [--duration 30s] [--force] [--revoke-retired] [--json] (admin credentials in SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET)"}
	}
	if *duration < 4*time.Second || *workers < 1 {
		return usageError{"--duration must be at least 4s and --workers at least 1"}
	}
	if *adminURL == "" {
		*adminURL = *issuer
	}
	report, err := drill.Run(ctx, drill.Options{Issuer: *issuer, Duration: *duration, Force: *force, Revoke: *revoke,
		Workers: *workers, Log: stderr, NewAdmin: func(ctx context.Context) (drill.Admin, error) {
			ac, err := newAdminClient(ctx, *adminURL, "")
			if err != nil {
				return nil, err
			}
			return ac, nil
		}})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		drill.Print(stdout, report)
	}
	var failed []string
	for _, r := range report.Results {
		if r.Rejected > 0 {
			failed = append(failed, r.Verifier)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("valid tokens were rejected by: %s", strings.Join(failed, ", "))
	}
	return nil
}
