package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signet-auth/signet/adminclient"
	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/keksource"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/schema"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/storeopen"
)

// countWriter counts what it passes on.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeVerified runs write into a temporary file beside path, syncs it,
// reads it back with backup.Verify (backup.CheckIntegrity when kek is nil:
// the CLI downloading an online backup does not hold the server's KEK),
// and renames it to path. It refuses to replace an existing file.
func writeVerified(ctx context.Context, path string, kek []byte, write func(w *countWriter) error) (int64, error) {
	if _, err := os.Stat(path); err == nil {
		return 0, fmt.Errorf("%s already exists: choose another name or remove it", path)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".signet-backup-*")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return 0, fmt.Errorf("backup: %w", err)
	}
	cw := &countWriter{w: f}
	err = write(cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	check := backup.CheckIntegrity
	if kek != nil {
		check = func(ctx context.Context, path, tmpDir string) (backup.Header, error) {
			return backup.Verify(ctx, path, tmpDir, kek)
		}
	}
	if _, err := check(ctx, tmp, dir); err != nil {
		return 0, fmt.Errorf("backup: the file written does not read back: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return cw.n, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// backupTo is what GET /admin/backup streams: the running server's store.
func (m *Main) backupTo(ctx context.Context, w io.Writer) error {
	hdr, err := m.backupHeader(ctx)
	if err != nil {
		return err
	}
	return backup.Write(ctx, w, m.Store, hdr, m.kek)
}

// runBackup is `signet backup --out FILE`: online through the admin API
// while the server runs, or offline on a stopped store.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	var cf configFlags
	cf.registerOffline(fs)
	out := fs.String("out", "", "backup file to write (mode 0600; must not exist)")
	server := fs.String("server", "", "back up a running server at URL (admin credentials from SIGNET_CLIENT_ID and SIGNET_CLIENT_SECRET)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return usageError{"usage: signet backup --out FILE [--server URL | --data-dir DIR]"}
	}
	var n int64
	var err error
	if *server != "" {
		var ac *adminclient.Client
		if ac, err = newAdminClient(ctx, *server, cf.serverDataDir(fs)); err != nil {
			return err
		}
		n, err = writeVerified(ctx, *out, nil, func(w *countWriter) error { return ac.Download(ctx, "/admin/backup", w) })
	} else {
		var cfg config.Config
		if cfg, err = cf.load(fs); err != nil {
			return err
		}
		n, err = backupOffline(ctx, &cfg, *out)
	}
	if err != nil {
		return err
	}
	h, err := backup.ReadHeader(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written: %s\n  bytes %d, kind %s, created_at %s, signet %s, schema v%d, kek %s\n",
		*out, n, h.Kind, h.CreatedAt.Format(time.RFC3339), h.SignetVersion, h.SchemaVersion, h.KEKFingerprint)
	fmt.Fprintln(stdout, "  keep the KEK (not in the file) apart from it: the backup is useless without it, and both together are every secret of this Signet")
	return nil
}

func backupOffline(ctx context.Context, cfg *config.Config, out string) (int64, error) {
	st, err := storeopen.Open(ctx, cfg, nil) // storage.backend: bolt or etcd
	if err != nil {
		return 0, err
	}
	defer st.Close()
	infos, err := keys.List(ctx, st)
	if err != nil {
		return 0, err
	}
	// The backup's MAC is keyed from the KEK, so even a store without keys
	// needs one (created here as serve would, for a store that has none).
	kek, err := keksource.Resolve(ctx, cfg, os.Getenv, len(infos) == 0, newLogger(io.Discard, cfg.Log))
	if err != nil {
		return 0, err
	}
	s, err := schema.Read(ctx, st)
	if err != nil {
		return 0, err
	}
	hdr := backup.Header{CreatedAt: time.Now().UTC(), SignetVersion: readBuildInfo().Version, SchemaVersion: s.Version, KEKFingerprint: backup.KEKFingerprint(kek)}
	return writeBackupFile(ctx, out, st, hdr, kek)
}

// runRestore is `signet restore --from FILE --data-dir DIR`.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	var cf configFlags
	cf.registerOffline(fs)
	from := fs.String("from", "", "backup file to restore")
	force := fs.Bool("force", false, "replace a store that has data (it is kept beside as signet.db.before-restore-TIME)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || fs.NArg() != 0 {
		return usageError{"usage: signet restore --from FILE --data-dir DIR [--force]"}
	}
	cfg, err := cf.load(fs)
	if err != nil {
		return err
	}
	if cfg.Storage.Backend == "etcd" {
		// Restore writes a new bolt file and swaps it in; it cannot replace
		// a shared store under running replicas. Said plainly rather than
		// writing a bolt file no replica reads.
		return fmt.Errorf("storage.backend etcd: signet restore writes a bolt data directory, not etcd: " +
			"restore into a bolt data directory (a configuration with storage.backend bolt, or --data-dir DIR without this configuration), " +
			"stop the replicas, then copy it into an empty etcd prefix with signet migrate --from BOLT_CONFIG --to ETCD_CONFIG")
	}
	dbPath := cfg.BoltPath()
	dir := filepath.Dir(dbPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	// The KEK first: the file is trusted only if its MAC verifies under a
	// key derived from it. Restore never creates a KEK.
	kek, err := keksource.Resolve(ctx, &cfg, os.Getenv, false, newLogger(stderr, cfg.Log))
	if err != nil {
		return fmt.Errorf("restore needs the key-encryption key the backup was made with: %w", err)
	}
	hdr, err := backup.Verify(ctx, *from, dir, kek)
	if errors.Is(err, backup.ErrUnauthenticated) {
		// The header's fingerprint is only a hint here (anyone can edit it):
		// it tells an operator which KEK the writer claimed to hold.
		claimed := "none"
		if h, herr := backup.ReadHeader(*from); herr == nil && h.KEKFingerprint != "" {
			claimed = h.KEKFingerprint
		}
		return fmt.Errorf("%s: %w (the key-encryption key in use has fingerprint %s; the header names %s): "+
			"set SIGNET_KEK or keys.encryption_key_file to the KEK the backup was made with; "+
			"if it is that KEK, the file was altered: do not restore it", *from, err, backup.KEKFingerprint(kek), claimed)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", *from, err)
	}
	if plan := schema.Default(); hdr.SchemaVersion > plan.Current {
		return fmt.Errorf("%s: %w", *from, &schema.TooNewError{Store: hdr.SchemaVersion, Binary: plan.Current})
	}

	// The store being replaced, if any: what it knows that the backup
	// does not is reported, and the revocations are applied again.
	var cur *backup.State
	if _, err := os.Stat(dbPath); err == nil {
		st, err := storeopen.OpenBolt(dbPath, cfg.Parsed.LockTimeout)
		if err != nil {
			return err
		}
		s, err := backup.ReadState(ctx, st)
		st.Close()
		if err != nil {
			return fmt.Errorf("read the current store %s: %w", dbPath, err)
		}
		if !s.Empty {
			if !*force {
				return fmt.Errorf("%s has data: restoring would replace it; add --force to replace it (it is kept beside, renamed)", dbPath)
			}
			cur = &s
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", dbPath, err)
	}

	tmp := dbPath + ".restore-tmp"
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	nst, err := bolt.Open(tmp, bolt.Options{})
	if err != nil {
		return err
	}
	_, n, err := backup.Load(ctx, *from, dir, kek, nst)
	if err != nil {
		nst.Close()
		return fmt.Errorf("restore %s: %w", *from, err)
	}
	// The KEK must open the restored keys: checked on the keys themselves,
	// not on the fingerprint the file claims, so a store that serve would
	// refuse is never put in place.
	if err := keys.CheckKEK(ctx, nst, kek); err != nil {
		nst.Close()
		return fmt.Errorf("restore %s: the key-encryption key in use (fingerprint %s) does not open the signing keys in the backup: %w; "+
			"set SIGNET_KEK or keys.encryption_key_file to the KEK the keys were sealed with", *from, backup.KEKFingerprint(kek), err)
	}
	restored, err := backup.ReadState(ctx, nst)
	if err != nil {
		nst.Close()
		return err
	}
	r := backup.Compare(cur, restored)
	if r.Denials, err = backup.ReapplyDenials(ctx, nst, cur); err != nil {
		nst.Close()
		return err
	}
	if err := nst.Close(); err != nil {
		return err
	}
	var kept string
	if _, err := os.Stat(dbPath); err == nil {
		kept = dbPath + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(dbPath, kept); err != nil {
			return fmt.Errorf("keep the current store: %w", err)
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return fmt.Errorf("put the restored store in place: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}

	// Re-apply key revocations with the key manager (promotion of the
	// pending key included) and record the restore, as the CLI.
	ctx = cliContext(ctx)
	st, err := storeopen.OpenBoltFile(dbPath, cfg.Parsed.LockTimeout)
	if err != nil {
		return err
	}
	defer st.Close()
	// A backup of an older schema is migrated now; the backup file itself
	// is the copy from before the migration.
	if _, err := schema.Default().Migrate(ctx, st, time.Now(), nil); err != nil {
		return fmt.Errorf("restored store: %w", err)
	}
	if len(r.RevokeAgain) > 0 {
		km, err := keys.Open(ctx, keys.Options{
			Store: st, KEK: kek, Algorithms: cfg.Keys.Algorithms, RSABits: cfg.Keys.RSABits,
			MaxTokenTTL: cfg.Parsed.MaxTTL, PurgeLeeway: cfg.Parsed.PurgeLeeway, MinPublishAge: cfg.Parsed.JWKSMaxAge,
			Logger: newLogger(io.Discard, cfg.Log),
		})
		if err != nil {
			return fmt.Errorf("re-apply key revocations: %w", err)
		}
		for _, kid := range r.RevokeAgain {
			if err := km.Revoke(ctx, kid); err != nil {
				km.Close()
				return fmt.Errorf("re-apply the revocation of key %s: %w (revoke it before serving: signet keys revoke %s)", kid, err, kid)
			}
		}
		km.Close()
	}
	detail := fmt.Sprintf("from=%s created_at=%s records=%d revoked_again=%s", filepath.Base(*from), hdr.CreatedAt.Format(time.RFC3339), n, strings.Join(r.RevokeAgain, ","))
	if err := audit.New(st, nil).Record(ctx, audit.Attribute(ctx, audit.Event{Action: "store.restore", Outcome: audit.OutcomeOK, Detail: detail})); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s (created %s, signet %s, schema v%d): %d records into %s\n",
		*from, hdr.CreatedAt.Format(time.RFC3339), hdr.SignetVersion, hdr.SchemaVersion, n, dbPath)
	if kept != "" {
		fmt.Fprintf(stdout, "the store it replaced is kept as %s\n", kept)
	}
	r.Print(stdout, cur != nil, hdr.CreatedAt)
	return nil
}
