package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Purged is what one run of a purge job did to one kind of record. The
// server turns it into metrics (signet_purge_deleted_total,
// signet_purge_failures_total, signet_purge_oldest_expired_seconds) and log
// lines.
type Purged struct {
	Kind    string    // what was purged, as the metrics label it: "refresh_sessions", "denylist", ...
	Deleted int       // records deleted
	Oldest  time.Time // when the oldest expired record the run found expired; zero when it found none
	Err     error     // why the run failed, if it did; Deleted still counts what it deleted
}

// Expired records the expired records of one bucket that a purge found.
type Expired struct {
	Bucket string
	Recs   []Record
	Oldest time.Time
}

// Add records key=value, expired since since.
func (e *Expired) Add(key string, value []byte, since time.Time) {
	e.Recs = append(e.Recs, Record{Key: key, Value: value})
	if e.Oldest.IsZero() || since.Before(e.Oldest) {
		e.Oldest = since
	}
}

// PurgeExpired deletes what a purge found, each record on a check of its
// own value (Store.DeleteUnchanged): a record written again since the scan
// is left for the next run, and nothing else a live request writes makes
// the purge conflict, so it progresses under any load. The buckets are
// purged in the order given; the first failure stops the run (a later
// bucket's records may depend on an earlier one being gone).
func PurgeExpired(ctx context.Context, st Store, kind string, found ...*Expired) Purged {
	p := Purged{Kind: kind}
	for _, e := range found {
		if !e.Oldest.IsZero() && (p.Oldest.IsZero() || e.Oldest.Before(p.Oldest)) {
			p.Oldest = e.Oldest
		}
	}
	for _, e := range found {
		n, err := st.DeleteUnchanged(ctx, e.Bucket, e.Recs)
		p.Deleted += n
		if err != nil {
			p.Err = fmt.Errorf("purge %s: %w", kind, err)
			return p
		}
	}
	return p
}

// PurgeBucket is PurgeExpired for a bucket whose records expire on their
// own: expired says whether the record key=value has expired at now and
// since when. A record it cannot decode should be reported expired (since
// now): nothing can use it.
func PurgeBucket(ctx context.Context, st Store, kind, bucket string, expired func(key string, value []byte) (since time.Time, ok bool)) Purged {
	e := &Expired{Bucket: bucket}
	err := st.View(ctx, func(tx Tx) error {
		*e = Expired{Bucket: bucket}
		return tx.Scan(bucket, "", func(k string, v []byte) error {
			if since, ok := expired(k, v); ok {
				e.Add(k, v, since)
			}
			return nil
		})
	})
	if err != nil {
		return Purged{Kind: kind, Err: fmt.Errorf("purge %s: scan %s: %w", kind, bucket, err)}
	}
	return PurgeExpired(ctx, st, kind, e)
}

// PurgeErr joins the errors of reports.
func PurgeErr(reports []Purged) error {
	var errs []error
	for _, r := range reports {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}
