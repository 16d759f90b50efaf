package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signet-auth/signet/audit"
	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/schema"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
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
// reads it back with backup.Verify, and renames it to path. It refuses to
// replace an existing file.
func writeVerified(ctx context.Context, path string, write func(w *countWriter) error) (int64, error) {
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
	if _, err := backup.Verify(ctx, tmp, dir); err != nil {
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
	return backup.Write(ctx, w, m.Store, hdr)
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
		var ac *adminClient
		if ac, err = newAdminClient(ctx, *server); err != nil {
			return err
		}
		n, err = writeVerified(ctx, *out, func(w *countWriter) error { return ac.download(ctx, "/admin/backup", w) })
	} else {
		var cfg Config
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

func backupOffline(ctx context.Context, cfg *Config, out string) (int64, error) {
	st, err := openConfigStore(ctx, cfg, nil) // storage.backend: bolt or etcd
	if err != nil {
		return 0, err
	}
	defer st.Close()
	infos, err := keys.List(ctx, st)
	if err != nil {
		return 0, err
	}
	// A store without keys seals nothing: its backup names no KEK.
	fingerprint := ""
	if len(infos) > 0 {
		kek, err := resolveKEK(ctx, cfg, os.Getenv, false, newLogger(io.Discard, cfg.Log))
		if err != nil {
			return 0, err
		}
		fingerprint = backup.KEKFingerprint(kek)
	}
	s, err := schema.Read(ctx, st)
	if err != nil {
		return 0, err
	}
	hdr := backup.Header{CreatedAt: time.Now().UTC(), SignetVersion: readBuildInfo().Version, SchemaVersion: s.Version, KEKFingerprint: fingerprint}
	return writeBackupFile(ctx, out, st, hdr)
}

// download streams the answer to GET path into w.
func (a *adminClient) download(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	// No overall timeout: a large store takes as long as it takes.
	resp, err := (&http.Client{Transport: a.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(b, &e)
		return fmt.Errorf("GET %s: %w", path, &apiError{Status: resp.StatusCode, Code: e.Error, Description: e.Description})
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// Buckets whose records restore compares; their formats belong to authority.
const (
	clientsBucket  = "clients"
	usersBucket    = "users"
	familiesBucket = "refresh_families"
	denylistBucket = "denylist"
	cutoffsBucket  = "subject_cutoffs"
)

// storeState is what restore compares between the store it replaces and
// the backup it restores.
type storeState struct {
	empty   bool
	keys    map[string]keys.Info
	buckets map[string]map[string][]byte // clients, users, families, denylist, cutoffs
}

func readStoreState(ctx context.Context, st storage.Store) (storeState, error) {
	s := storeState{keys: map[string]keys.Info{}, buckets: map[string]map[string][]byte{}}
	infos, err := keys.List(ctx, st)
	if err != nil {
		return s, err
	}
	for _, k := range infos {
		s.keys[k.KID] = k
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		names, err := storage.Buckets(tx)
		if err != nil {
			return err
		}
		s.empty = len(names) == 0 || slices.Equal(names, []string{schema.Bucket})
		for _, b := range []string{clientsBucket, usersBucket, familiesBucket, denylistBucket, cutoffsBucket} {
			m := map[string][]byte{}
			if err := tx.Scan(b, "", func(k string, v []byte) error { m[k] = v; return nil }); err != nil {
				return err
			}
			s.buckets[b] = m
		}
		return nil
	})
	return s, err
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
	hdr, err := backup.Verify(ctx, *from, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", *from, err)
	}
	if plan := schema.Default(); hdr.SchemaVersion > plan.Current {
		return fmt.Errorf("%s: %w", *from, &schema.TooNewError{Store: hdr.SchemaVersion, Binary: plan.Current})
	}
	kek, err := resolveKEK(ctx, &cfg, os.Getenv, hdr.KEKFingerprint == "", newLogger(stderr, cfg.Log))
	if err != nil {
		return fmt.Errorf("restore needs the key-encryption key the backup was made with: %w", err)
	}
	if hdr.KEKFingerprint != "" && !backup.MatchKEK(hdr.KEKFingerprint, kek) {
		return fmt.Errorf("the key-encryption key in use (fingerprint %s) is not the one of the backup (%s): "+
			"set SIGNET_KEK or keys.encryption_key_file to the KEK the backup was made with", backup.KEKFingerprint(kek), hdr.KEKFingerprint)
	}

	// The store being replaced, if any: what it knows that the backup
	// does not is reported, and the revocations are applied again.
	var cur *storeState
	if _, err := os.Stat(dbPath); err == nil {
		st, err := openBolt(dbPath, cfg.parsed.lockTimeout)
		if err != nil {
			return err
		}
		s, err := readStoreState(ctx, st)
		st.Close()
		if err != nil {
			return fmt.Errorf("read the current store %s: %w", dbPath, err)
		}
		if !s.empty {
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
	_, n, err := backup.Load(ctx, *from, dir, nst)
	if err != nil {
		nst.Close()
		return fmt.Errorf("restore %s: %w", *from, err)
	}
	restored, err := readStoreState(ctx, nst)
	if err != nil {
		nst.Close()
		return err
	}
	r := compareStores(cur, restored)
	if r.denials, err = reapplyDenials(ctx, nst, cur); err != nil {
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
	st, err := openBoltFile(dbPath, cfg.parsed.lockTimeout)
	if err != nil {
		return err
	}
	defer st.Close()
	// A backup of an older schema is migrated now; the backup file itself
	// is the copy from before the migration.
	if _, err := schema.Default().Migrate(ctx, st, time.Now(), nil); err != nil {
		return fmt.Errorf("restored store: %w", err)
	}
	if len(r.revokeAgain) > 0 {
		km, err := keys.Open(ctx, keys.Options{
			Store: st, KEK: kek, Algorithms: cfg.Keys.Algorithms, RSABits: cfg.Keys.RSABits,
			MaxTokenTTL: cfg.parsed.maxTTL, PurgeLeeway: cfg.parsed.purgeLeeway, MinPublishAge: cfg.parsed.jwksMaxAge,
			Logger: newLogger(io.Discard, cfg.Log),
		})
		if err != nil {
			return fmt.Errorf("re-apply key revocations: %w", err)
		}
		for _, kid := range r.revokeAgain {
			if err := km.Revoke(ctx, kid); err != nil {
				km.Close()
				return fmt.Errorf("re-apply the revocation of key %s: %w (revoke it before serving: signet keys revoke %s)", kid, err, kid)
			}
		}
		km.Close()
	}
	detail := fmt.Sprintf("from=%s created_at=%s records=%d revoked_again=%s", filepath.Base(*from), hdr.CreatedAt.Format(time.RFC3339), n, strings.Join(r.revokeAgain, ","))
	if err := audit.New(st, nil).Record(ctx, audit.Attribute(ctx, audit.Event{Action: "store.restore", Outcome: audit.OutcomeOK, Detail: detail})); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s (created %s, signet %s, schema v%d): %d records into %s\n",
		*from, hdr.CreatedAt.Format(time.RFC3339), hdr.SignetVersion, hdr.SchemaVersion, n, dbPath)
	if kept != "" {
		fmt.Fprintf(stdout, "the store it replaced is kept as %s\n", kept)
	}
	r.print(stdout, cur != nil, hdr.CreatedAt)
	return nil
}

// restoreReport is what restore found between the replaced store and the backup.
type restoreReport struct {
	revokeAgain     []string // revoked in the current store, not in the backup: revoked again
	purgedBack      []string // purged from the current store, back from the backup
	newerKeys       []string // in the current store only: gone
	clientsBack     []string // deleted since the backup: back
	clientsChanged  []string // changed since the backup: the backup's version is back
	clientsLost     []string // created after the backup: gone
	usersBack       []string
	usersChanged    []string
	usersLost       []string
	sessionsChanged int // refresh families that differ
	denials         int // denylist entries and subject cutoffs re-applied
}

func compareStores(cur *storeState, restored storeState) restoreReport {
	var r restoreReport
	if cur == nil {
		return r
	}
	for kid, k := range cur.keys {
		b, ok := restored.keys[kid]
		switch {
		case !ok:
			r.newerKeys = append(r.newerKeys, k.Alg+":"+kid+" ("+string(k.State)+")")
		case k.State == keys.StateRevoked && b.State != keys.StateRevoked:
			r.revokeAgain = append(r.revokeAgain, kid)
		}
	}
	for kid, b := range restored.keys {
		if _, ok := cur.keys[kid]; !ok {
			r.purgedBack = append(r.purgedBack, b.Alg+":"+kid+" ("+string(b.State)+" in the backup)")
		}
	}
	diff := func(bucket string) (back, changed, lost []string) {
		c, b := cur.buckets[bucket], restored.buckets[bucket]
		for k, v := range b {
			cv, ok := c[k]
			switch {
			case !ok:
				back = append(back, k)
			case !bytes.Equal(cv, v):
				changed = append(changed, k)
			}
		}
		for k := range c {
			if _, ok := b[k]; !ok {
				lost = append(lost, k)
			}
		}
		return back, changed, lost
	}
	r.clientsBack, r.clientsChanged, r.clientsLost = diff(clientsBucket)
	r.usersBack, r.usersChanged, r.usersLost = diff(usersBucket)
	b, ch, l := diff(familiesBucket)
	r.sessionsChanged = len(b) + len(ch) + len(l)
	for _, s := range [][]string{r.revokeAgain, r.purgedBack, r.newerKeys, r.clientsBack, r.clientsChanged, r.clientsLost, r.usersBack, r.usersChanged, r.usersLost} {
		slices.Sort(s)
	}
	return r
}

// reapplyDenials copies the denylist entries and subject cutoffs of the
// replaced store into the restored one, keeping the later of two values:
// they only ever refuse tokens, so applying them again is always safe.
func reapplyDenials(ctx context.Context, st storage.Store, cur *storeState) (int, error) {
	if cur == nil {
		return 0, nil
	}
	n := 0
	err := st.Update(ctx, func(tx storage.Tx) error {
		n = 0
		for _, b := range []string{denylistBucket, cutoffsBucket} {
			for k, v := range cur.buckets[b] {
				old, err := tx.Get(b, k)
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				if err == nil && unixAtLeast(old, v) {
					continue // the restored value is as late
				}
				if err := tx.Put(b, k, v); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// unixAtLeast compares two decimal Unix times; unreadable values are not "at least".
func unixAtLeast(a, b []byte) bool {
	x, err1 := strconv.ParseInt(string(a), 10, 64)
	y, err2 := strconv.ParseInt(string(b), 10, 64)
	return err1 == nil && err2 == nil && x >= y
}

func (r restoreReport) print(w io.Writer, hadStore bool, createdAt time.Time) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "!!! BEFORE SERVING THIS STORE !!!")
	if !hadStore {
		fmt.Fprintf(w, "!!! There was no store to compare with. Everything changed after %s is undone:\n", createdAt.Format(time.RFC3339))
		fmt.Fprintln(w, "!!!  - keys revoked since are published and trusted again: revoke them again (signet keys revoke KID)")
		fmt.Fprintln(w, "!!!  - keys rotated since: rotate (signet keys rotate) so tokens are signed by a key that is not old")
		fmt.Fprintln(w, "!!!  - clients and users deleted or disabled since are back, rotated secrets and passwords are the old ones")
		fmt.Fprintln(w, "!!!  - sessions ended since (logout, refresh token revocation) work again: signet users logout USER")
		fmt.Fprintln(w, "!!!  - tokens signed by keys created after the backup no longer verify")
		return
	}
	line := func(what string, items []string, todo string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "!!! %s: %s\n!!!     %s\n", what, strings.Join(items, ", "), todo)
	}
	line("re-applied: keys revoked in the replaced store, revoked again", r.revokeAgain, "done (the pending key of the algorithm was promoted where needed)")
	line("keys the replaced store had purged, back from the backup", r.purgedBack, "rotate before serving: signet keys rotate --force (retired keys are purged again when they expire)")
	line("keys of the replaced store not in the backup (tokens they signed no longer verify)", r.newerKeys, "nothing to do unless those tokens matter: their holders must get new ones")
	line("clients deleted since the backup, back", r.clientsBack, "delete them again: signet clients delete ID")
	line("clients changed since the backup (secret, scopes, disabled), the backup's version is back", r.clientsChanged, "review them; rotate their secrets: signet clients rotate-secret ID")
	line("clients created after the backup, gone", r.clientsLost, "create them again")
	line("users deleted since the backup, back", r.usersBack, "delete them again: signet users delete ID")
	line("users changed since the backup (password, disabled), the backup's version is back", r.usersChanged, "review them; set passwords again and log them out: signet users logout ID")
	line("users created after the backup, gone", r.usersLost, "create them again")
	if r.sessionsChanged > 0 {
		fmt.Fprintf(w, "!!! %d refresh token sessions differ from the replaced store: sessions ended since the backup work again\n!!!     log out the users concerned: signet users logout ID\n", r.sessionsChanged)
	}
	if r.denials > 0 {
		fmt.Fprintf(w, "!!! re-applied: %d revoked tokens and subject cutoffs of the replaced store\n", r.denials)
	}
	fmt.Fprintln(w, "!!! The replaced store is kept: compare with `signet audit --data-dir` on a copy of it for what else changed.")
}
