// Command signet is the Signet token authority: `signet serve` runs it, and
// the other commands manage keys, clients and users, online through the
// admin API or offline on a data directory no server holds open.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/keksource"
)

// command is one `signet NAME` subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":   {"run the authority", runServe},
		"keys":    {"list, rotate or revoke signing keys", runKeys},
		"jwks":    {"export the key set signed, for verifiers that cannot reach Signet", runJWKS},
		"clients": {"create, list, delete clients or rotate a client secret", runClients},
		"users":   {"create, list, delete users or set a password", runUsers},
		"init":    {"create the first admin client on an empty store", runInit},
		"drill":   {"run a key-rotation drill against a running server", runDrill},
		"verify":  {"verify an access token as a service does (keys and revocations from the issuer)", runVerify},
		"version": {"print the version, commit, build date and Go version", runVersion},
		"audit":   {"read the audit trail (every key change and admin action)", runAudit},
		"backup":  {"write a backup of the store, online (--server) or offline", runBackup},
		"restore": {"restore a backup into a data directory (server stopped)", runRestore},
		"health":  {"check that a running server is ready (GET /readyz; exit 0 or 1)", runHealth},
		"migrate": {"copy a store into another, empty one: bolt to etcd or back (keys stay encrypted)", runMigrate},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		unknownCommand(stderr, args[0], cmds)
		return 2
	}
	if code, ok := checkSubcommand(args[0], args[1:], stderr); !ok {
		return code
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errParsedOnly) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "signet %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "signet %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line itself (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// configFlags are the flags every command that reads the configuration takes.
type configFlags struct {
	config, addr, dataDir, issuer string
}

func (f *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file (YAML); also SIGNET_CONFIG")
	fs.StringVar(&f.addr, "addr", "", "listen address HOST:PORT (default 127.0.0.1:8080); also SIGNET_ADDR")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default ./data); also SIGNET_DATA_DIR")
	fs.StringVar(&f.issuer, "issuer", "", "issuer URL (default http://localhost:8080); also SIGNET_ISSUER")
}

// registerOffline registers the flags of the commands that work on a data
// directory: the listen address and issuer are serve's alone.
func (f *configFlags) registerOffline(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file (YAML); also SIGNET_CONFIG")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default ./data); also SIGNET_DATA_DIR")
}

// load builds the configuration: defaults, then the file, then SIGNET_*
// variables, then the flags given on the command line; then validates it,
// reporting every problem at once.
func (f *configFlags) load(fs *flag.FlagSet) (config.Config, error) {
	path := f.config
	if path == "" {
		path = os.Getenv("SIGNET_CONFIG")
	}
	c, err := config.Load(config.Sources{File: path, Getenv: os.Getenv, Environ: os.Environ(), Set: func(c *config.Config) {
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "addr":
				c.HTTP.Addr = f.addr
			case "data-dir":
				c.DataDir = f.dataDir
			case "issuer":
				c.Issuer = f.issuer
			}
		})
	}})
	if err != nil {
		return config.Config{}, err
	}
	// Offline commands read the same files serve does: refuse a KEK file
	// other users can read here too, not only at serve.
	if os.Getenv("SIGNET_KEK") == "" {
		if err := keksource.CheckMode(c.KEKPath()); err != nil {
			return config.Config{}, err
		}
	}
	// serve logs them with its other start-up warnings; the other commands
	// have no log, so they print them.
	if fs.Name() != "signet serve" {
		for _, w := range c.Parsed.EnvWarnings {
			fmt.Fprintf(fs.Output(), "signet: warning: %s\n", w)
		}
	}
	return c, nil
}

// serverDataDir is the data directory the configuration names (flags,
// SIGNET_*, file; ./data by default): where an online command looks for
// the admin credentials a server on this machine wrote at its first start.
// A configuration that does not load gives "" (no lookup): the online
// command needs nothing else from it.
func (f *configFlags) serverDataDir(fs *flag.FlagSet) string {
	path := f.config
	if path == "" {
		path = os.Getenv("SIGNET_CONFIG")
	}
	c, err := config.Load(config.Sources{File: path, Getenv: os.Getenv, Set: func(c *config.Config) {
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name == "data-dir" {
				c.DataDir = f.dataDir
			}
		})
	}})
	if err != nil {
		return ""
	}
	return c.DataDir
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("signet "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, "[flags]")
	return fs
}

// parseFlags parses args and turns flag errors into usage errors. Flags may
// come after positional arguments (`signet keys revoke KID --server URL`),
// which the standard flag package alone does not allow; "--" ends flags.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if _, ok := fs.Output().(parseOnlyOutput); ok {
		return errParsedOnly
	}
	return nil
}

func parseFlagsOnly(fs *flag.FlagSet, args []string) error {
	// A kid or other base64url value may start with "-": it stands in the
	// arguments as a placeholder while the flags are parsed, when it
	// cannot be a flag name (flag names are lower-case words).
	var hidden []string
	args = slices.Clone(args)
	for i, a := range args {
		if a == "--" {
			break
		}
		if notAFlag(fs, a) {
			args[i] = fmt.Sprintf("\x00%d", len(hidden))
			hidden = append(hidden, a)
		}
	}
	defer func() {
		for i, a := range fs.Args() {
			var n int
			if _, err := fmt.Sscanf(a, "\x00%d", &n); err == nil && n < len(hidden) {
				fs.Args()[i] = hidden[n]
			}
		}
	}()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Leave the positional arguments where fs.Args expects them.
	return fs.Parse(append([]string{"--"}, positional...))
}

// notAFlag says whether arg, which may start with "-", is an argument: not
// "-" or "--", not a defined flag, and not shaped like a flag name (so a
// mistyped flag is still an error).
func notAFlag(fs *flag.FlagSet, arg string) bool {
	if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
	if fs.Lookup(name) != nil || name == "h" || name == "help" {
		return false
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || i > 0 && (r == '-' || r >= '0' && r <= '9')) {
			return true
		}
	}
	return false
}
