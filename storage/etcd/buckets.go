package etcd

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-auth/signet/storage"
)

var _ storage.BucketLister = (*tx)(nil)

// Buckets lists the buckets that hold at least one record, in ascending
// byte order, at the transaction's revision: one keys-only read of one key
// per bucket, skipping to the end of each bucket's range. (Backup and
// `signet migrate` need it.)
func (t *tx) Buckets() ([]string, error) {
	if t.done.Load() {
		return nil, errTxDone
	}
	root := t.s.prefix + "b/"
	end := clientv3.GetPrefixRangeEnd(root)
	var names []string
	for cursor := root; ; {
		resp, err := t.get(cursor, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
		if err != nil {
			return nil, fmt.Errorf("etcd buckets: %w", err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		escaped, _, ok := strings.Cut(string(resp.Kvs[0].Key)[len(root):], "/")
		if !ok {
			return nil, fmt.Errorf("etcd buckets: key %q outside the layout", resp.Kvs[0].Key)
		}
		name, err := url.PathUnescape(escaped)
		if err != nil {
			return nil, fmt.Errorf("etcd buckets: bucket %q: %w", escaped, err)
		}
		names = append(names, name)
		cursor = clientv3.GetPrefixRangeEnd(root + escaped + "/")
	}
	// This transaction's own writes: buckets it created or emptied.
	return t.mergeOwnBuckets(names)
}

// errFound stops a Scan at its first record.
var errFound = fmt.Errorf("found")

// mergeOwnBuckets corrects names, read from etcd, for the transaction's
// own writes: a bucket it wrote to may have become non-empty or empty.
func (t *tx) mergeOwnBuckets(names []string) ([]string, error) {
	touched := map[string]bool{}
	for _, w := range t.writes {
		touched[w.bucket] = true
	}
	if len(touched) == 0 {
		return names, nil
	}
	var out []string
	for _, n := range names {
		if !touched[n] {
			out = append(out, n)
		}
	}
	for b := range touched {
		err := t.Scan(b, "", func(string, []byte) error { return errFound })
		switch {
		case err == errFound:
			out = append(out, b)
		case err != nil:
			return nil, err
		}
	}
	slices.Sort(out)
	return out, nil
}
