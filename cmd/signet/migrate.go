package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/signet-auth/signet/config"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storeopen"
)

// migrateChunk is how many records one write transaction of migrate holds:
// below etcd's default --max-txn-ops (128).
const migrateChunk = 100

// runMigrate copies every record of one store into another, empty one:
// bolt to etcd when a deployment outgrows one machine, etcd to bolt to go
// back. Records are copied as bytes, so signing keys stay encrypted under
// the same KEK: give the destination's replicas the source's KEK.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	from := fs.String("from", "", "config file naming the store to copy (bolt data_dir or storage.etcd)")
	to := fs.String("to", "", "config file naming the empty store to copy into")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" || fs.NArg() != 0 {
		return usageError{"usage: signet migrate --from CONFIG --to CONFIG (servers of the source stopped)"}
	}
	srcCfg, err := loadMigrateConfig(*from)
	if err != nil {
		return err
	}
	dstCfg, err := loadMigrateConfig(*to)
	if err != nil {
		return err
	}
	if storeopen.Name(&srcCfg) == storeopen.Name(&dstCfg) {
		return fmt.Errorf("migrate: --from and --to name the same store (%s)", storeopen.Name(&srcCfg))
	}
	src, err := storeopen.Open(ctx, &srcCfg, nil)
	if err != nil {
		return fmt.Errorf("migrate from %s: %w", storeopen.Name(&srcCfg), err)
	}
	defer src.Close()
	dst, err := storeopen.OpenUnchecked(ctx, &dstCfg, nil)
	if err != nil {
		return fmt.Errorf("migrate to %s: %w", storeopen.Name(&dstCfg), err)
	}
	defer dst.Close()
	counts, err := migrateStore(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("migrate %s to %s: %w", storeopen.Name(&srcCfg), storeopen.Name(&dstCfg), err)
	}
	total := 0
	for _, c := range counts {
		fmt.Fprintf(stdout, "  %-24s %d records\n", c.bucket, c.n)
		total += c.n
	}
	fmt.Fprintf(stdout, "migrated %d records from %s to %s; keys are still encrypted under the source's KEK: give it to every replica of the destination\n",
		total, storeopen.Name(&srcCfg), storeopen.Name(&dstCfg))
	return nil
}

// loadMigrateConfig reads one side's configuration file. Environment
// variables are not applied: SIGNET_STORAGE_BACKEND would make both sides
// the same store.
func loadMigrateConfig(path string) (config.Config, error) {
	c, err := config.Load(config.Sources{File: path})
	if err != nil {
		return config.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

type bucketCount struct {
	bucket string
	n      int
}

// migrateStore copies every bucket of src into dst, which must be empty,
// reading src in one snapshot and writing dst in chunks.
func migrateStore(ctx context.Context, src, dst storage.Store) ([]bucketCount, error) {
	var existing []string
	if err := dst.View(ctx, func(tx storage.Tx) error {
		var err error
		existing, err = storage.Buckets(tx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read destination: %w", err)
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("destination is not empty (buckets %v): migrate only into a new store", existing)
	}
	var counts []bucketCount
	err := src.View(ctx, func(tx storage.Tx) error {
		buckets, err := storage.Buckets(tx)
		if err != nil {
			return err
		}
		for _, b := range buckets {
			var chunk []storage.Event
			flush := func() error {
				if len(chunk) == 0 {
					return nil
				}
				err := dst.Update(ctx, func(w storage.Tx) error {
					for _, e := range chunk {
						if err := w.Put(e.Bucket, e.Key, e.Value); err != nil {
							return err
						}
					}
					return nil
				})
				chunk = chunk[:0]
				return err
			}
			n := 0
			err := tx.Scan(b, "", func(k string, v []byte) error {
				chunk = append(chunk, storage.Event{Bucket: b, Key: k, Value: v})
				n++
				if len(chunk) == migrateChunk {
					return flush()
				}
				return nil
			})
			if err == nil {
				err = flush()
			}
			if err != nil {
				return fmt.Errorf("copy bucket %s: %w", b, err)
			}
			counts = append(counts, bucketCount{b, n})
		}
		return nil
	})
	if errors.Is(err, storage.ErrNoBucketList) {
		return nil, fmt.Errorf("source backend cannot list its buckets: %w", err)
	}
	return counts, err
}
