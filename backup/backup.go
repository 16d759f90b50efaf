// Package backup writes and reads Signet backup files: a consistent copy of
// every bucket of a store, behind a header that says what it is and which
// key-encryption key (by fingerprint, never the key) opens its private keys.
//
// A file is, in order:
//
//	signet-backup\n          magic line
//	{header JSON}\n          Header
//	body                     Kind "bolt": Header.Size bytes of a bbolt file;
//	                         Kind "logical": one JSON Record per line
//	{trailer JSON}\n         Trailer: record count, SHA-256 of the body, and
//	                         HMAC-SHA256 of everything before the trailer
//
// The SHA-256 tells a damaged or cut file from an intact one; anyone can
// recompute it. The HMAC is keyed by a key derived from the key-encryption
// key (HKDF-SHA256, MACKeyInfo), so only a Signet holding that KEK can
// write a file that restores: a file changed by someone who can write
// backups but does not hold the KEK is refused.
//
// "logical" works for every backend that lists its buckets
// (storage.BucketLister); "bolt" is the fast path of the bbolt backend
// (Tx.WriteTo in one read transaction). Both restore into any backend.
package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/bolt"
)

// FormatVersion is the version of the file layout this package writes and
// reads. Format 1 (before the HMAC) is refused: nothing in it proves who
// wrote it (ErrUnauthenticated).
const FormatVersion = 2

// MACKeyInfo is the HKDF info (purpose label) of the backup MAC key: the
// KEK seals private keys with AES-GCM, and a key used for a second purpose
// is derived, never the KEK itself.
const MACKeyInfo = "signet backup hmac-sha256 v2"

const magic = "signet-backup\n"

// Body kinds.
const (
	KindBolt    = "bolt"
	KindLogical = "logical"
)

// Header describes a backup.
type Header struct {
	Format        int       `json:"format"`
	Kind          string    `json:"kind"`
	CreatedAt     time.Time `json:"created_at"`
	SignetVersion string    `json:"signet_version"`
	// SchemaVersion is the store's schema version (schema package).
	SchemaVersion int `json:"schema_version"`
	// KEKFingerprint identifies the key-encryption key that seals the
	// private keys in the backup (KEKFingerprint), never the key itself.
	KEKFingerprint string `json:"kek_fingerprint"`
	// Size is the length of a bolt body in bytes.
	Size int64 `json:"size,omitempty"`
}

// Record is one key of one bucket in a logical body.
type Record struct {
	Bucket string `json:"b"`
	Key    string `json:"k"`
	Value  []byte `json:"v"`
}

// Trailer ends a backup; without it the file is incomplete.
type Trailer struct {
	End     bool   `json:"end"`
	Records int    `json:"records,omitempty"`
	SHA256  string `json:"sha256"`
	// HMAC is the HMAC-SHA256, under MACKey(kek), of every byte before the
	// trailer line (magic, header line, body).
	HMAC string `json:"hmac_sha256"`
}

// MACKey derives the backup MAC key from kek.
func MACKey(kek []byte) ([]byte, error) {
	if len(kek) == 0 {
		return nil, errors.New("backup: no key-encryption key to derive the MAC key from")
	}
	k, err := hkdf.Key(sha256.New, kek, nil, MACKeyInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("backup: derive the MAC key: %w", err)
	}
	return k, nil
}

// ErrUnauthenticated is returned for a file whose MAC is missing or does
// not verify under the KEK given.
var ErrUnauthenticated = errors.New("backup authentication failed")

// KEKFingerprint is a short, domain-separated SHA-256 of kek: enough to tell
// two keys apart, useless to recover one.
func KEKFingerprint(kek []byte) string {
	h := sha256.New()
	h.Write([]byte("signet kek fingerprint v1\x00"))
	h.Write(kek)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// MatchKEK reports whether kek has the fingerprint fp.
func MatchKEK(fp string, kek []byte) bool {
	return subtle.ConstantTimeCompare([]byte(fp), []byte(KEKFingerprint(kek))) == 1
}

// snapshotter is the bolt fast path.
type snapshotter interface {
	Snapshot(ctx context.Context, fn func(size int64, writeTo func(io.Writer) (int64, error)) error) error
}

// Write writes a backup of st to w, authenticated under kek (MACKey). h's
// Format, Kind and Size are set here; the rest is the caller's. A bbolt
// store is copied as a file in one read transaction, any other store
// logically in one View.
func Write(ctx context.Context, w io.Writer, st storage.Store, h Header, kek []byte) error {
	macKey, err := MACKey(kek)
	if err != nil {
		return err
	}
	h.Format = FormatVersion
	if s, ok := st.(snapshotter); ok {
		return s.Snapshot(ctx, func(size int64, writeTo func(io.Writer) (int64, error)) error {
			h.Kind, h.Size = KindBolt, size
			mac := hmac.New(sha256.New, macKey)
			if err := writeHeader(io.MultiWriter(w, mac), h); err != nil {
				return err
			}
			sum := sha256.New()
			n, err := writeTo(io.MultiWriter(w, sum, mac))
			if err != nil {
				return fmt.Errorf("backup: write snapshot: %w", err)
			}
			if n != size {
				return fmt.Errorf("backup: snapshot wrote %d bytes, expected %d", n, size)
			}
			return writeTrailer(w, Trailer{End: true, SHA256: hex.EncodeToString(sum.Sum(nil)), HMAC: hex.EncodeToString(mac.Sum(nil))})
		})
	}
	h.Kind = KindLogical
	return st.View(ctx, func(tx storage.Tx) error {
		buckets, err := storage.Buckets(tx)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		mac := hmac.New(sha256.New, macKey)
		if err := writeHeader(io.MultiWriter(w, mac), h); err != nil {
			return err
		}
		sum := sha256.New()
		bw := bufio.NewWriter(io.MultiWriter(w, sum, mac))
		enc := json.NewEncoder(bw)
		n := 0
		for _, b := range buckets {
			err := tx.Scan(b, "", func(k string, v []byte) error {
				n++
				return enc.Encode(Record{Bucket: b, Key: k, Value: v})
			})
			if err != nil {
				return fmt.Errorf("backup: bucket %s: %w", b, err)
			}
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		return writeTrailer(w, Trailer{End: true, Records: n, SHA256: hex.EncodeToString(sum.Sum(nil)), HMAC: hex.EncodeToString(mac.Sum(nil))})
	})
}

func writeHeader(w io.Writer, h Header) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("backup: encode header: %w", err)
	}
	if _, err := io.WriteString(w, magic+string(b)+"\n"); err != nil {
		return fmt.Errorf("backup: write header: %w", err)
	}
	return nil
}

func writeTrailer(w io.Writer, t Trailer) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("backup: encode trailer: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("backup: write trailer: %w", err)
	}
	return nil
}

// ErrInvalid is wrapped by every error about a file that is not a complete,
// intact Signet backup.
var ErrInvalid = errors.New("not a complete Signet backup")

// maxHeader bounds the header line.
const maxHeader = 64 << 10

// readHeader reads the magic line and the header; mac, when not nil, is
// fed both exactly as they are in the file.
func readHeader(r *bufio.Reader, mac hash.Hash) (Header, error) {
	m := make([]byte, len(magic))
	if _, err := io.ReadFull(r, m); err != nil || string(m) != magic {
		return Header{}, fmt.Errorf("%w: no signet-backup header", ErrInvalid)
	}
	line, err := readLine(r, maxHeader)
	if err != nil {
		return Header{}, fmt.Errorf("%w: header: %w", ErrInvalid, err)
	}
	if mac != nil {
		mac.Write(m)
		mac.Write(line)
		mac.Write([]byte{'\n'})
	}
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return Header{}, fmt.Errorf("%w: header: %w", ErrInvalid, err)
	}
	if h.Format == 1 {
		return Header{}, fmt.Errorf("%w: backup format 1 carries no MAC, so nothing proves Signet wrote it or that it was not changed since: "+
			"if you are sure of where it comes from, restore it with the signet release that wrote it (signet_version %q in its header), "+
			"start that release once, and take a new backup with this one", ErrUnauthenticated, h.SignetVersion)
	}
	if h.Format != FormatVersion {
		return Header{}, fmt.Errorf("backup format %d: this binary reads format %d: use a matching signet version", h.Format, FormatVersion)
	}
	if h.Kind != KindBolt && h.Kind != KindLogical {
		return Header{}, fmt.Errorf("%w: unknown kind %q", ErrInvalid, h.Kind)
	}
	return h, nil
}

func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, errors.New("line too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// maxRecord bounds one line of a logical body.
const maxRecord = 64 << 20

// Read checks the whole backup in r (header, body, trailer, checksum and
// the HMAC under MACKey(kek)) and calls fn for every record, in bucket then
// key order, as it goes. fn sees records before the checksum and the MAC
// are verified: a caller that writes them must discard its work on error.
// A bolt body is spooled to a temporary file in tmpDir so that bbolt can
// read it.
func Read(ctx context.Context, r io.Reader, tmpDir string, kek []byte, fn func(Record) error) (Header, error) {
	macKey, err := MACKey(kek)
	if err != nil {
		return Header{}, err
	}
	return read(ctx, r, tmpDir, macKey, fn)
}

// read is Read with the MAC key; nil checks structure and checksum only
// (CheckIntegrity).
func read(ctx context.Context, r io.Reader, tmpDir string, macKey []byte, fn func(Record) error) (Header, error) {
	var mac hash.Hash
	if macKey != nil {
		mac = hmac.New(sha256.New, macKey)
	}
	br := bufio.NewReaderSize(r, 1<<20)
	h, err := readHeader(br, mac)
	if err != nil {
		return Header{}, err
	}
	sum := sha256.New()
	body := io.Writer(sum)
	if mac != nil {
		body = io.MultiWriter(sum, mac)
	}
	records := 0
	switch h.Kind {
	case KindLogical:
		for {
			line, err := readLine(br, maxRecord)
			if err != nil {
				return h, fmt.Errorf("%w: truncated body: %w", ErrInvalid, err)
			}
			var probe struct {
				End *bool `json:"end"`
			}
			_ = json.Unmarshal(line, &probe)
			if probe.End != nil {
				if err := checkTrailer(line, sum, mac, records, true); err != nil {
					return h, err
				}
				return h, expectEOF(br)
			}
			body.Write(line)
			body.Write([]byte{'\n'})
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil || rec.Bucket == "" {
				return h, fmt.Errorf("%w: record %d: %v", ErrInvalid, records+1, err)
			}
			records++
			if err := fn(rec); err != nil {
				return h, err
			}
		}
	default: // KindBolt
		if h.Size <= 0 {
			return h, fmt.Errorf("%w: bolt body of size %d", ErrInvalid, h.Size)
		}
		f, err := os.CreateTemp(tmpDir, ".signet-restore-*")
		if err != nil {
			return h, fmt.Errorf("backup: spool: %w", err)
		}
		path := f.Name()
		defer os.Remove(path)
		n, err := io.Copy(io.MultiWriter(f, body), io.LimitReader(br, h.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return h, fmt.Errorf("backup: spool: %w", err)
		}
		if n != h.Size {
			return h, fmt.Errorf("%w: truncated body (%d of %d bytes)", ErrInvalid, n, h.Size)
		}
		line, err := readLine(br, maxHeader)
		if err != nil {
			return h, fmt.Errorf("%w: no trailer: %w", ErrInvalid, err)
		}
		if err := checkTrailer(line, sum, mac, 0, false); err != nil {
			return h, err
		}
		if err := expectEOF(br); err != nil {
			return h, err
		}
		return h, boltRecords(ctx, path, fn)
	}
}

// checkTrailer checks the trailer line against the body's checksum and,
// when mac is not nil, the HMAC. The checksum comes first: a damaged file
// is reported as damaged, a consistent one with a wrong MAC as forged or
// made under another KEK.
func checkTrailer(line []byte, sum, mac hash.Hash, records int, countRecords bool) error {
	var t Trailer
	if err := json.Unmarshal(line, &t); err != nil || !t.End {
		return fmt.Errorf("%w: bad trailer", ErrInvalid)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != t.SHA256 {
		return fmt.Errorf("%w: checksum mismatch (damaged or cut short)", ErrInvalid)
	}
	if countRecords && t.Records != records {
		return fmt.Errorf("%w: %d records, trailer says %d", ErrInvalid, records, t.Records)
	}
	if mac == nil {
		return nil
	}
	want, err := hex.DecodeString(t.HMAC)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("%w: the trailer has no HMAC-SHA256", ErrUnauthenticated)
	}
	if !hmac.Equal(mac.Sum(nil), want) {
		return fmt.Errorf("%w: the HMAC-SHA256 of the file does not verify under the key derived from this key-encryption key: "+
			"the file was changed after Signet wrote it, or it was written by a Signet with another KEK", ErrUnauthenticated)
	}
	return nil
}

func expectEOF(r *bufio.Reader) error {
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the trailer", ErrInvalid)
	}
	return nil
}

// boltRecords reads every record of the bbolt file at path.
func boltRecords(ctx context.Context, path string, fn func(Record) error) error {
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return fmt.Errorf("%w: bolt body: %w", ErrInvalid, err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return fmt.Errorf("%w: bolt body: %w", ErrInvalid, err)
	}
	return st.View(ctx, func(tx storage.Tx) error {
		buckets, err := storage.Buckets(tx)
		if err != nil {
			return err
		}
		for _, b := range buckets {
			err := tx.Scan(b, "", func(k string, v []byte) error { return fn(Record{Bucket: b, Key: k, Value: v}) })
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Verify reads the whole backup file at path and returns its header if it
// is complete, intact and authenticated under kek. A bolt body is spooled
// in tmpDir.
func Verify(ctx context.Context, path, tmpDir string, kek []byte) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	return Read(ctx, f, tmpDir, kek, func(Record) error { return nil })
}

// CheckIntegrity is Verify without the MAC: that the file is complete and
// undamaged, for whoever reads a backup back without holding the KEK (the
// CLI that downloads an online backup). It proves nothing about who wrote
// the file; restore always uses Verify.
func CheckIntegrity(ctx context.Context, path, tmpDir string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	return read(ctx, f, tmpDir, nil, func(Record) error { return nil })
}

// ReadHeader returns the header of the backup file at path without checking the body.
func ReadHeader(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	return readHeader(bufio.NewReader(f), nil)
}

// loadBatch is how many records one restore transaction writes: small
// enough for backends that bound a transaction's size (etcd).
const loadBatch = 100

// Load copies every record of the backup file at path, authenticated under
// kek, into dst, which should be empty (a bolt body is spooled in tmpDir). It writes in transactions of loadBatch records, so dst is
// complete only when Load returns nil; restore into a store no server uses.
func Load(ctx context.Context, path, tmpDir string, kek []byte, dst storage.Store) (Header, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, 0, err
	}
	defer f.Close()
	var batch []Record
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := dst.Update(ctx, func(tx storage.Tx) error {
			for _, r := range batch {
				if err := tx.Put(r.Bucket, r.Key, r.Value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("restore: write: %w", err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	h, err := Read(ctx, f, tmpDir, kek, func(r Record) error {
		batch = append(batch, Record{Bucket: r.Bucket, Key: r.Key, Value: bytes.Clone(r.Value)})
		if len(batch) == loadBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return h, n, err
	}
	return h, n, flush()
}
