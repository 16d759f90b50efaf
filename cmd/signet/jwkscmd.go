package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/jwksdoc"
	"github.com/signet-auth/signet/keys/setsign"
	"github.com/signet-auth/signet/storeopen"
)

// runJWKS is `signet jwks export|signers`, offline on the data directory
// (docs/jwks-export.md). A running server writes the export itself when
// jwks.export.file is set.
func runJWKS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := args[0]
	if sub != "export" && sub != "signers" {
		return unknownSubcommand("jwks", sub)
	}
	fs := newFlagSet("jwks "+sub, stderr)
	var cf configFlags
	cf.registerOffline(fs)
	out := fs.String("out", "", "write to this file (0644, replaced atomically) instead of standard output")
	ttl := fs.Duration("ttl", 0, "how long the exported set is valid (default jwks.export.ttl, 24h)")
	rotate := fs.Bool("rotate", false, "rotate the set-signing key first (its pending key becomes active; pin the new pending one)")
	setUsage(fs, map[string]string{"export": "[--out FILE] [--ttl 24h] [flags]", "signers": "[--rotate] [--out FILE] [flags]"}[sub])
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return err
	}
	if *ttl == 0 {
		*ttl = cfg.Parsed.ExportTTL
	}
	st, err := storeopen.Open(ctx, &cfg, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx = cliContext(ctx)
	log := newLogger(stderr, cfg.Log)
	existing, err := keys.List(ctx, st)
	if err != nil {
		return err
	}
	kek, err := keksource.Resolve(ctx, &cfg, os.Getenv, len(existing) == 0, log)
	if err != nil {
		return err
	}
	custodies, closeCustody, err := openCustody(&cfg, os.Getenv)
	if err != nil {
		return err
	}
	defer closeCustody()
	opts := keys.Options{
		Store: st, KEK: kek, Algorithms: cfg.Keys.Algorithms, RSABits: cfg.Keys.RSABits, Custody: custodies,
		MaxTokenTTL: cfg.Parsed.MaxTTL, PurgeLeeway: cfg.Parsed.PurgeLeeway, MinPublishAge: cfg.Parsed.JWKSMaxAge, Logger: log,
	}
	signers, err := setsign.Open(ctx, st, opts)
	if err != nil {
		return keksource.Explain(err, &cfg, os.Getenv)
	}
	defer signers.Close()
	var body []byte
	switch sub {
	case "signers":
		if *rotate {
			if err := signers.Rotate(ctx, true); err != nil {
				return fmt.Errorf("rotate the set-signing key: %w", err)
			}
		}
		if body, err = setsign.Signers(signers); err != nil {
			return err
		}
		body = append(body, '\n')
	case "export":
		m, err := keys.Open(ctx, opts)
		if err != nil {
			return keksource.Explain(err, &cfg, os.Getenv)
		}
		defer m.Close()
		var prev []byte
		if *out != "" {
			prev, _ = os.ReadFile(*out) // absent: a first export
		}
		if body, err = exportSet(m, signers, cfg.Issuer, setsign.NextIssuedAt(time.Now(), prev), *ttl); err != nil {
			return err
		}
	}
	if *out == "" {
		_, err = stdout.Write(body)
		return err
	}
	return writePublicFile(*out, body)
}

// exportSet signs the JWK Set that /.well-known/jwks.json serves.
func exportSet(m *keys.Manager, signers *keys.Manager, issuer string, now time.Time, ttl time.Duration) ([]byte, error) {
	doc, _, err := jwksdoc.NewHandler(m, 0, nil).Document()
	if err != nil {
		return nil, err
	}
	b, err := setsign.Export(signers, issuer, doc, now, ttl)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// writePublicFile replaces path atomically (a verifier reading it never
// sees half a file) with mode 0644: the set is public.
func writePublicFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// exportLoop is jwks.export.file for `signet serve`: it writes the signed set
// at start, after every key change (the public set's version moves) and
// when half its lifetime has passed, so the file is never stale by more than
// a second nor close to its exp.
func exportLoop(ctx context.Context, m *keys.Manager, signers *keys.Manager, issuer, path string, ttl time.Duration, now func() time.Time, log *slog.Logger) {
	var lastVersion uint64
	var lastAt time.Time
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		_, v := m.PublicSet()
		if t := now(); v != lastVersion || t.Sub(lastAt) >= ttl/2 {
			prev, _ := os.ReadFile(path) // absent: a first export
			b, err := exportSet(m, signers, issuer, setsign.NextIssuedAt(t, prev), ttl)
			if err == nil {
				err = writePublicFile(path, b)
			}
			if err == nil {
				// The pins, beside the set: the pending signer is in it
				// before it signs anything.
				var pins []byte
				if pins, err = setsign.Signers(signers); err == nil {
					err = writePublicFile(path+".signers", append(pins, '\n'))
				}
			}
			if err != nil {
				log.LogAttrs(ctx, slog.LevelError, "jwks export", slog.String("path", path), slog.String("err", err.Error()))
			} else {
				lastVersion, lastAt = v, t
				log.LogAttrs(ctx, slog.LevelInfo, "jwks exported", slog.String("path", path), slog.Uint64("version", v))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
