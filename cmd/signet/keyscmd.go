package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
)

// runKeys is `signet keys list|rotate|revoke KID|feed-key`. Offline it opens the data
// directory (which no server may hold open) with the same configuration as
// serve.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: signet keys list|rotate|revoke KID|feed-key|orphans [--destroy] [--data-dir DIR | --server URL] [--json] [--force]"}
	}
	if args[0] == "orphans" {
		return runKeysOrphans(ctx, args[1:], stdout, stderr)
	}
	if args[0] != "list" && args[0] != "rotate" && args[0] != "revoke" && args[0] != "feed-key" {
		return unknownSubcommand("keys", args[0])
	}
	sub := args[0]
	fs := newFlagSet("keys "+sub, stderr)
	var cf configFlags
	cf.registerOffline(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	force := new(bool)
	if sub == "rotate" {
		fs.BoolVar(force, "force", false, "activate the pending key even if it was published for less than jwks.max_age")
	}
	setUsage(fs, map[string]string{"list": "[flags]", "rotate": "[--force] [flags]", "revoke": "KID [flags]", "feed-key": "[flags]"}[sub])
	server := fs.String("server", "", "talk to a running server at URL (admin credentials from SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var kid string
	if sub == "revoke" {
		if fs.NArg() != 1 {
			return usageError{"usage: signet keys revoke KID"}
		}
		kid = fs.Arg(0)
	} else if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *server != "" {
		if sub == "feed-key" {
			return usageError{"signet keys feed-key reads the key-encryption key: run it where the KEK is (--data-dir or --config), not with --server"}
		}
		return keysOnline(ctx, *server, cf.serverDataDir(fs), sub, kid, *force, *asJSON, stdout)
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return err
	}
	if sub == "feed-key" {
		kek, err := keksource.Resolve(ctx, &cfg, os.Getenv, false, newLogger(stderr, cfg.Log))
		if err != nil {
			return err
		}
		key := base64.RawURLEncoding.EncodeToString(keksource.FeedSubjectKey(kek))
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]string{"feed_subject_key": key})
		}
		fmt.Fprintln(stdout, key)
		fmt.Fprintln(stderr, "the revocation feed's subject key: give it to verifiers (jwks.WithDenylistSubjectKey) so they apply logouts; it is derived from the KEK, which it does not reveal")
		return nil
	}
	st, err := storeopen.Open(ctx, &cfg, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if sub == "list" {
		infos, err := keys.List(ctx, st)
		if err != nil {
			return err
		}
		if err := printKeys(stdout, infos, *asJSON); err != nil {
			return err
		}
		return warnOrphans(ctx, &cfg, st, stderr)
	}
	infos, err := keys.List(ctx, st)
	if err != nil {
		return err
	}
	ctx = cliContext(ctx)
	log := newLogger(stderr, cfg.Log)
	kek, err := keksource.Resolve(ctx, &cfg, os.Getenv, len(infos) == 0, log)
	if err != nil {
		return err
	}
	custodies, closeCustody, err := openCustody(&cfg, os.Getenv)
	if err != nil {
		return err
	}
	defer closeCustody()
	m, err := keys.Open(ctx, withCustody(custodies, keys.Options{
		Store: st, KEK: kek, Algorithms: cfg.Keys.Algorithms, RSABits: cfg.Keys.RSABits,
		MaxTokenTTL: cfg.Parsed.MaxTTL, PurgeLeeway: cfg.Parsed.PurgeLeeway, MinPublishAge: cfg.Parsed.JWKSMaxAge, Schedule: cfg.Parsed.Rotation.Next,
		Logger: log,
	}))
	if err != nil {
		return keksource.Explain(err, &cfg, os.Getenv)
	}
	defer m.Close()
	switch sub {
	case "rotate":
		err = m.Rotate(ctx, *force)
		if errors.Is(err, keys.ErrPendingTooYoung) {
			err = fmt.Errorf("%w (--force activates it anyway)", err)
		}
	case "revoke":
		err = m.Revoke(ctx, kid)
		if errors.Is(err, storage.ErrNotFound) {
			err = fmt.Errorf("key %q not found (signet keys list shows the kids)", kid)
		}
	}
	if err != nil {
		return err
	}
	return printKeys(stdout, m.Current(), *asJSON)
}

func printKeys(w io.Writer, infos []keys.Info, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if infos == nil {
			infos = []keys.Info{}
		}
		return enc.Encode(infos)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tEXPIRES")
	for _, k := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.State,
			fmtTime(k.CreatedAt), fmtTime(k.ActivatedAt), fmtTime(k.RetiredAt), fmtTime(k.ExpiresAt))
	}
	return tw.Flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
