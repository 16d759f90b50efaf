package etcd_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// backends opens, for each benchmark, a bbolt file and etcd stores on an
// embedded single member and an embedded three-member cluster, all in this
// process, all fsyncing as in production (etcdtest.Options.Fsync).
func backends(b *testing.B) []struct {
	name string
	s    storage.Store
} {
	bs, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bs.Close() })
	out := []struct {
		name string
		s    storage.Store
	}{{"bolt", bs}}
	for _, n := range []int{1, 3} {
		c := etcdtest.Start(b, etcdtest.Options{Members: n, Fsync: true})
		s, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints(), Prefix: "bench/"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		out = append(out, struct {
			name string
			s    storage.Store
		}{fmt.Sprintf("etcd-%dmember", n), s})
	}
	return out
}

var value = bytes.Repeat([]byte("r"), 200)

// BenchmarkUpdate: one goroutine, read-modify-write of one 200-byte
// record per Update: the latency of a rotation or an admin change.
func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			for b.Loop() {
				err := be.s.Update(ctx, func(tx storage.Tx) error {
					if _, err := tx.Get("b", "k"); err != nil && err != storage.ErrNotFound {
						return err
					}
					return tx.Put("b", "k", value)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatch: 64 goroutines per core each Batch-writing new 200-byte
// records (refresh tokens), as storage/bolt's BenchmarkBatchPut.
func BenchmarkBatch(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			var seq atomic.Int64
			b.SetParallelism(64)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("rt%016d", seq.Add(1))
					if err := be.s.Batch(ctx, func(tx storage.Tx) error { return tx.Put("refresh", key, value) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkViewGet: one goroutine, one Get in a View (a linearizable read
// on etcd).
func BenchmarkViewGet(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends(b) {
		if err := be.s.Update(ctx, func(tx storage.Tx) error { return tx.Put("b", "k", value) }); err != nil {
			b.Fatal(err)
		}
		b.Run(be.name, func(b *testing.B) {
			for b.Loop() {
				err := be.s.View(ctx, func(tx storage.Tx) error {
					_, err := tx.Get("b", "k")
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatchRead: as BenchmarkBatch, but each function first reads two
// existing records, as a refresh-token rotation does (token, family).
func BenchmarkBatchRead(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends(b) {
		err := be.s.Update(ctx, func(tx storage.Tx) error {
			for i := range 100 {
				if err := tx.Put("family", fmt.Sprint(i), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(be.name, func(b *testing.B) {
			var seq atomic.Int64
			b.SetParallelism(64)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					key := fmt.Sprintf("rt%016d", n)
					err := be.s.Batch(ctx, func(tx storage.Tx) error {
						for _, k := range []string{fmt.Sprint(n % 100), fmt.Sprint((n + 50) % 100)} {
							if _, err := tx.Get("family", k); err != nil {
								return err
							}
						}
						return tx.Put("refresh", key, value)
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
