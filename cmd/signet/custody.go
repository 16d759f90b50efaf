package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/custody"
	"github.com/signet-auth/signet/keys/custody/pkcs11"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
)

// openCustody opens the configured custodies: for keys.Options.Custody, and
// a close function for shutdown. No custody configured: nil, no error.
func openCustody(c *config.Config, getenv func(string) string) (map[string]custody.Custody, func() error, error) {
	p := c.Keys.Custody.PKCS11
	if len(p.Algorithms) == 0 {
		return nil, func() error { return nil }, nil
	}
	pin := getenv("SIGNET_PKCS11_PIN")
	if pin == "" && p.PINFile != "" {
		b, err := os.ReadFile(p.PINFile)
		if err != nil {
			return nil, nil, fmt.Errorf("keys.custody.pkcs11.pin_file: %w", err)
		}
		pin = strings.TrimSpace(string(b))
	}
	if pin == "" {
		return nil, nil, fmt.Errorf("keys.custody.pkcs11: no PIN: set SIGNET_PKCS11_PIN or keys.custody.pkcs11.pin_file")
	}
	hsm, err := pkcs11.Open(pkcs11.Config{Module: p.Module, TokenLabel: p.TokenLabel, PIN: pin})
	if err != nil {
		return nil, nil, fmt.Errorf("keys.custody.pkcs11: %w", err)
	}
	m := map[string]custody.Custody{}
	for _, a := range p.Algorithms {
		m[a] = hsm
	}
	return m, hsm.Close, nil
}

// byName indexes custodies (by algorithm, as keys.Options takes them) by
// their names, as keys.Orphans takes them.
func byName(byAlg map[string]custody.Custody) map[string]custody.Custody {
	out := map[string]custody.Custody{}
	for _, c := range byAlg {
		out[c.Name()] = c
	}
	return out
}

// warnOrphans tells `signet keys list` about orphans: key pairs a custody
// holds that no key record names (a rotation that crashed before its
// commit). It says nothing when no external custody is configured.
func warnOrphans(ctx context.Context, cfg *config.Config, st storage.Store, stderr io.Writer) error {
	cs, closeCustody, err := openCustody(cfg, os.Getenv)
	if err != nil || len(cs) == 0 {
		return err
	}
	defer closeCustody()
	orphans, err := keys.Orphans(ctx, st, byName(cs))
	if err != nil {
		return err
	}
	if len(orphans) > 0 {
		fmt.Fprintf(stderr, "warning: %d orphan key(s) in a key custody, generated but never committed (they never sign); signet keys orphans lists them, signet keys orphans --destroy removes them\n", len(orphans))
	}
	return nil
}

// runKeysOrphans is `signet keys orphans [--destroy [--min-age D]]`.
func runKeysOrphans(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys orphans", stderr)
	var cf configFlags
	cf.registerOffline(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	destroy := fs.Bool("destroy", false, "destroy the orphans older than --min-age")
	minAge := fs.Duration("min-age", 10*time.Minute, "spare orphans younger than this: a rotation on another replica may be about to commit them")
	setUsage(fs, "[--destroy [--min-age 10m]] [flags]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return err
	}
	cs, closeCustody, err := openCustody(&cfg, os.Getenv)
	if err != nil {
		return err
	}
	defer closeCustody()
	if len(cs) == 0 {
		return fmt.Errorf("no key custody holds keys outside the store (keys.custody is empty): there can be no orphans")
	}
	st, err := storeopen.Open(ctx, &cfg, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	var orphans []keys.Orphan
	if *destroy {
		orphans, err = keys.DestroyOrphans(cliContext(ctx), st, byName(cs), *minAge, time.Now(), newLogger(stderr, cfg.Log))
	} else {
		orphans, err = keys.Orphans(ctx, st, byName(cs))
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if orphans == nil {
			orphans = []keys.Orphan{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(orphans)
	}
	verb := "ORPHAN"
	if *destroy {
		verb = "DESTROYED"
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, verb+"\tCUSTODY\tLABEL\tCREATED")
	for _, o := range orphans {
		if o.Handle == nil && o.Label == "" {
			// keys.Orphan with neither: never destroyed (see pkcs11.Objects).
			fmt.Fprintf(tw, "-\t%s\t(no id, no label: an interrupted key generation; signet leaves it, remove it with the token's own tool)\t-\n", o.Custody)
			continue
		}
		fmt.Fprintf(tw, "%x\t%s\t%s\t%s\n", o.Handle, o.Custody, o.Label, fmtTime(o.Created))
	}
	return tw.Flush()
}

// withCustody is o with its custodies set.
func withCustody(c map[string]custody.Custody, o keys.Options) keys.Options {
	o.Custody = c
	return o
}
