package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/signet-auth/signet/config"
)

// subcommand is one `signet COMMAND SUB` form, for the help and for
// suggesting the closest one to a mistyped name.
type subcommand struct {
	name, args, summary string
}

// subcommands lists the commands that take a subcommand.
func subcommands() map[string][]subcommand {
	return map[string][]subcommand{
		"keys": {
			{"list", "", "list the signing keys and their states"},
			{"rotate", "[--force]", "activate each algorithm's pending key and publish a new one"},
			{"revoke", "KID", "revoke a key at once (an emergency)"},
			{"feed-key", "", "print the revocation feed's subject key for verifiers (offline: needs the KEK)"},
			{"orphans", "[--destroy]", "list (or destroy) key pairs an HSM holds that no key names"},
		},
		"jwks": {
			{"export", "--out FILE [--ttl 24h]", "write the key set as a signed document (JWS, iss/iat/exp)"},
			{"signers", "[--rotate]", "print the set-signing public keys verifiers pin"},
		},
		"clients": {
			{"create", "--id ID --audience AUD ...", "create a client and print its secret once"},
			{"list", "", "list the clients"},
			{"get", "ID", "show one client"},
			{"update", "ID [--auth-method M] [--jwks-file F | --jwks-uri URL] ...", "change how a client authenticates (private_key_jwt keys)"},
			{"delete", "ID", "delete a client"},
			{"rotate-secret", "ID [--keep-old D]", "issue a new client secret"},
		},
		"users": {
			{"create", "--username NAME ...", "create a user (password on stdin or prompted)"},
			{"list", "", "list the users"},
			{"delete", "USER", "delete a user and revoke its sessions"},
			{"set-password", "USER", "set a user's password and revoke its sessions"},
			{"logout", "USER", "revoke every session of a user"},
			{"consents", "USER [--withdraw CLIENT]", "list what the user allowed third-party clients; withdraw one (revokes that client's refresh tokens for the user)"},
			{"factors", "USER [--reset]", "show the user's second factors; --reset removes them (a lost device), audited"},
		},
	}
}

// usage prints every command, and every subcommand of the commands that
// have them, with its summary.
func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: signet COMMAND [flags]\n\ncommands:")
	subs := subcommands()
	type line struct{ name, summary string }
	var lines []line
	for n, c := range cmds {
		if len(subs[n]) == 0 {
			lines = append(lines, line{n, c.summary})
			continue
		}
		for _, s := range subs[n] {
			lines = append(lines, line{strings.TrimSpace(n + " " + s.name + " " + s.args), s.summary})
		}
	}
	// Stable order: by command, subcommands in their listed order.
	sort.SliceStable(lines, func(i, j int) bool {
		return strings.Fields(lines[i].name)[0] < strings.Fields(lines[j].name)[0]
	})
	width := 0
	for _, l := range lines {
		width = max(width, len(l.name))
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l.name, l.summary)
	}
	fmt.Fprintln(w, "\nRun 'signet COMMAND [SUBCOMMAND] -h' for its flags.")
}

// subUsage prints the subcommands of one command.
func subUsage(w io.Writer, cmd string) {
	fmt.Fprintf(w, "usage: signet %s SUBCOMMAND [flags]\n\nsubcommands:\n", cmd)
	for _, s := range subcommands()[cmd] {
		fmt.Fprintf(w, "  %-32s %s\n", strings.TrimSpace(s.name+" "+s.args), s.summary)
	}
	fmt.Fprintf(w, "\nRun 'signet %s SUBCOMMAND -h' for its flags.\n", cmd)
}

// checkSubcommand handles a command with subcommands given none, or -h:
// it prints the subcommands. ok is false when run must stop with code.
// Each command's own dispatch decides which subcommands exist (see
// unknownSubcommand), so one added there is never refused here.
func checkSubcommand(cmd string, args []string, stderr io.Writer) (code int, ok bool) {
	if len(subcommands()[cmd]) == 0 {
		return 0, true
	}
	if len(args) == 0 {
		subUsage(stderr, cmd)
		return 2, false
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		subUsage(stderr, cmd)
		return 0, false
	}
	return 0, true
}

// unknownSubcommand is the usage error for a subcommand cmd does not have,
// suggesting the closest one it lists.
func unknownSubcommand(cmd, sub string) error {
	var names []string
	for _, s := range subcommands()[cmd] {
		names = append(names, s.name)
	}
	msg := fmt.Sprintf("unknown subcommand %q", sub)
	if s := config.Closest(sub, names); s != "" {
		msg += fmt.Sprintf(": did you mean %q?", "signet "+cmd+" "+s)
	} else {
		msg += fmt.Sprintf(" (one of %s)", strings.Join(names, ", "))
	}
	return usageError{msg}
}

// unknownCommand says that name is no command and suggests the closest.
func unknownCommand(w io.Writer, name string, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	msg := fmt.Sprintf("signet: unknown command %q", name)
	if s := config.Closest(name, names); s != "" {
		msg += fmt.Sprintf(": did you mean %q?", "signet "+s)
	}
	fmt.Fprintf(w, "%s\n\n", msg)
	usage(w, cmds)
}

// setUsage makes fs's -h print a usage line and then only fs's own flags.
func setUsage(fs *flag.FlagSet, args string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s %s\n\nflags:\n", fs.Name(), args)
		fs.PrintDefaults()
	}
}

// errParsedOnly stops a command after its flags parsed, in parseOnly.
var errParsedOnly = errors.New("flags parsed; parse-only run")

// parseOnlyOutput marks a parse-only run: every command writes its flag
// errors to stderr through its flag set, so the flag set's output is how
// parseFlags knows to stop before the command's action.
type parseOnlyOutput struct{ io.Writer }

// parseOnly checks a command line as `signet` would parse it (command,
// subcommand, flags and their values) without running it: no store, no
// network. It returns the exit code run would give a bad line (2), or 0.
// The docs test uses it to keep every `signet ...` line in the docs valid.
func parseOnly(args []string, stderr io.Writer) int {
	return run(context.Background(), args, io.Discard, parseOnlyOutput{stderr})
}
