package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-auth/signet/backup"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

func openStore(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "signet.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// logicalOnly hides the bolt fast path, as any other backend would.
type logicalOnly struct{ storage.Store }

func fill(t *testing.T, st storage.Store) map[string]string {
	t.Helper()
	want := map[string]string{}
	err := st.Update(t.Context(), func(tx storage.Tx) error {
		for i := range 300 {
			b, k, v := fmt.Sprint("bucket", i%3), fmt.Sprintf("key%03d", i), bytes.Repeat([]byte{byte(i)}, i)
			want[b+"/"+k] = string(v)
			if err := tx.Put(b, k, v); err != nil {
				return err
			}
		}
		return tx.Put("empty-value", "k", []byte{})
	})
	if err != nil {
		t.Fatal(err)
	}
	want["empty-value/k"] = ""
	return want
}

func dump(t *testing.T, st storage.Store) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := st.View(t.Context(), func(tx storage.Tx) error {
		bs, err := storage.Buckets(tx)
		if err != nil {
			return err
		}
		for _, b := range bs {
			if err := tx.Scan(b, "", func(k string, v []byte) error { got[b+"/"+k] = string(v); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestRoundTrip: both kinds restore every record and keep the header.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(storage.Store) storage.Store
		kind string
	}{
		{"bolt", func(s storage.Store) storage.Store { return s }, backup.KindBolt},
		{"logical", func(s storage.Store) storage.Store { return logicalOnly{s} }, backup.KindLogical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := openStore(t)
			want := fill(t, src)
			kek := bytes.Repeat([]byte{7}, 32)
			hdr := backup.Header{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), SignetVersion: "v9", SchemaVersion: 1, KEKFingerprint: backup.KEKFingerprint(kek)}
			var buf bytes.Buffer
			if err := backup.Write(t.Context(), &buf, tc.wrap(src), hdr, kek); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "b.signet-backup")
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := backup.Verify(t.Context(), path, dir, kek)
			if err != nil {
				t.Fatal(err)
			}
			if h.Kind != tc.kind || h.SignetVersion != "v9" || !h.CreatedAt.Equal(hdr.CreatedAt) || !backup.MatchKEK(h.KEKFingerprint, kek) || backup.MatchKEK(h.KEKFingerprint, make([]byte, 32)) {
				t.Errorf("header = %+v", h)
			}
			if bytes.Contains(buf.Bytes()[:200], kek) {
				t.Error("the KEK is in the header")
			}
			dst := openStore(t)
			if _, n, err := backup.Load(t.Context(), path, dir, kek, dst); err != nil || n != len(want) {
				t.Fatalf("load = %d, %v; want %d records", n, err, len(want))
			}
			got := dump(t, dst)
			if len(got) != len(want) {
				t.Fatalf("restored %d records, want %d", len(got), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("record %s differs", k)
				}
			}

			// Cut short or damaged: refused, whatever the place.
			for _, bad := range [][]byte{
				buf.Bytes()[:buf.Len()-2],
				buf.Bytes()[:buf.Len()/2],
				flip(buf.Bytes(), buf.Len()/2),
				append(bytes.Clone(buf.Bytes()), 'x'),
			} {
				if err := os.WriteFile(path, bad, 0o600); err != nil {
					t.Fatal(err)
				}
				if _, err := backup.Verify(context.Background(), path, dir, kek); !errors.Is(err, backup.ErrInvalid) {
					t.Errorf("damaged backup (%d bytes): %v, want ErrInvalid", len(bad), err)
				}
			}

			// Intact but under another KEK, or with the trailer's MAC
			// replaced: refused as unauthenticated, not as damaged.
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := backup.Verify(t.Context(), path, dir, bytes.Repeat([]byte{8}, 32)); !errors.Is(err, backup.ErrUnauthenticated) {
				t.Errorf("other KEK: %v, want ErrUnauthenticated", err)
			}
			if _, err := backup.CheckIntegrity(t.Context(), path, dir); err != nil {
				t.Errorf("CheckIntegrity of an intact file: %v", err)
			}
			if _, err := backup.Verify(t.Context(), path, dir, nil); err == nil {
				t.Error("Verify without a KEK succeeded")
			}
			forged := bytes.Replace(buf.Bytes(), []byte(`"hmac_sha256":"`), []byte(`"hmac_sha256":"00`), 1)
			if err := os.WriteFile(path, forged, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := backup.Verify(t.Context(), path, dir, kek); !errors.Is(err, backup.ErrUnauthenticated) {
				t.Errorf("replaced MAC: %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}
