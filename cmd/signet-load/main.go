// Command signet-load measures a whole `signet serve` the way a user sees it
// (over loopback, server CPU per request read from /proc) beside bare
// baselines in the same run, the same with keys in a SoftHSM2 token beside
// keys in the store (custody), and soaks a three-replica etcd fleet under a
// chaos schedule. It is a tool, not a test: see BENCHMARKS.md.
//
//	signet-load [bench] [-duration 5s -rounds 3 -concurrency 16 -brief -signet PATH]
//	signet-load custody [-duration 5s -rounds 3 -concurrency 16 -brief -signet PATH]
//	signet-load flows [-only register,cimd,login,grants -users 100] [bench's flags]
//	signet-load soak [-minutes 10 -signet PATH]
//
// The subcommands baseline and etcd-member are the tool's own child
// processes (a bare HTTP server, an embedded etcd member): children, so
// that their CPU is read from /proc exactly as the server's is.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	cmd := "bench"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "bench":
		err = runBench(ctx, args)
	case "custody":
		err = runCustody(ctx, args)
	case "flows":
		err = runFlows(ctx, args)
	case "soak":
		err = runSoak(ctx, args)
	case "baseline":
		err = runBaseline(ctx, args)
	case "etcd-member":
		err = runEtcdMember(ctx, args)
	default:
		err = fmt.Errorf("unknown command %q: use bench, custody, flows or soak", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "signet-load:", err)
		os.Exit(1)
	}
}
