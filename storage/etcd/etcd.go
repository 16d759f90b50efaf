// Package etcd implements storage.Store on an etcd cluster, so several
// Signet replicas can share one store.
//
// Layout. Every key lives under Options.Prefix, so several deployments can
// share a cluster:
//
//	<prefix>b/<bucket>/<key>   a record (bucket escaped: "%" and "/" as %25, %2F)
//	<prefix>g/<bucket>         the bucket's delete guard (see below)
//
// Transactions are optimistic. Reads in one transaction are taken at one
// revision (the first read is linearizable and fixes it; later reads use
// WithRev). At commit, one etcd transaction checks that nothing the function
// read has changed since that revision and applies its writes:
//
//   - a Get'd key: ModRevision(key) == the revision seen (0 when absent);
//   - a Scan'd range: ModRevision < read revision + 1 over the whole range
//     (no key created or changed), and the same on the bucket's delete guard
//     (no key deleted: a deleted key is gone from the range, so the range
//     compare cannot see it; every transaction that deletes in a bucket
//     also writes the bucket's guard).
//
// A failed check re-runs the function after a jittered backoff, at most
// Options.MaxAttempts times, then Update returns storage.ErrConflict.
//
// Differences from bbolt a caller may notice: several writes to one key in
// one transaction are one etcd write, so Watch reports the last one only;
// a transaction is bounded by the cluster's --max-txn-ops (128 by default)
// writes and --max-request-bytes (1.5 MiB) in all. Batch commits
// independent transactions that are ready together in one etcd transaction
// (see batch.go).
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signet-auth/signet/storage"
)

// Defaults for zero Options fields.
const (
	DefaultPrefix         = "signet/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxAttempts    = 10
	// DefaultMaxTxnOps is etcd's own default for --max-txn-ops.
	DefaultMaxTxnOps = 128
)

// Backoff between attempts of a conflicting Update: full jitter over an
// exponentially growing bound, so writers that collided spread out.
const (
	backoffBase = 2 * time.Millisecond
	backoffMax  = 100 * time.Millisecond
)

// defaultCommitters is how many Batch commits may be in flight at once.
const defaultCommitters = 4

// scanPage is how many records one Scan request returns; a bucket of 100k
// records is read in pages rather than in one response of its whole size.
const scanPage = 500

// Options configures Open.
type Options struct {
	// Endpoints are the client URLs of the cluster members.
	Endpoints []string
	// Prefix is prepended to every key; "" means DefaultPrefix. A "/" is
	// added if it does not end with one.
	Prefix string
	// DialTimeout bounds connecting (and the check Open makes); 0 means 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each etcd request (a caller's earlier deadline
	// wins); 0 means 5s.
	RequestTimeout time.Duration
	// TLS names PEM files for a cluster that requires TLS.
	TLS TLSFiles
	// Username and Password authenticate to etcd when Username is set. The
	// caller reads the password from wherever it is kept.
	Username string
	Password string
	// MaxAttempts bounds how many times Update runs a function whose reads
	// changed before it commits; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// MaxTxnOps is the cluster's --max-txn-ops; 0 means DefaultMaxTxnOps.
	// Above it, Update checks whole buckets instead of single keys, and
	// refuses transactions with more writes than that.
	MaxTxnOps int
	// Logger receives watch restarts and reloads (warn) and debug messages;
	// nil discards them.
	Logger *slog.Logger
}

// TLSFiles names the PEM files of a TLS connection to etcd. All empty means
// plain TCP (or system roots for https:// endpoints).
type TLSFiles struct {
	CAFile   string // CA bundle to verify the members; "" means system roots
	CertFile string // client certificate, for clusters with --client-cert-auth
	KeyFile  string // its private key
}

// Store is a storage.Store on etcd. It is safe for concurrent use.
type Store struct {
	cl     *clientv3.Client
	prefix string
	opts   Options
	log    *slog.Logger

	closed atomic.Bool   // set under mu
	done   chan struct{} // closed by Close: stops watchers
	wg     sync.WaitGroup

	mu           sync.Mutex   // guards closing and the fields below
	batchQueue   []*commitReq // Batch transactions waiting for the next commit
	batchRunning int          // commitLoop goroutines committing
	committers   int          // at most that many

	beforeGroupCommit func() // test hook: runs before each commit of the committer
	// commitHook, a test hook, sends each commit of Update and Batch in
	// place of calling send: to lose an answer, or to send late.
	commitHook func(send func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error)
}

var _ storage.Store = (*Store)(nil)

// Open connects to etcd and checks, within DialTimeout, that the cluster
// answers a read under the prefix (so a wrong endpoint, certificate or
// password fails here, not at the first request).
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	cfg, err := clientConfig(opts)
	if err != nil {
		return nil, err
	}
	return open(ctx, opts, cfg)
}

func (opts Options) withDefaults() Options {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = DefaultMaxTxnOps
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return opts
}

func clientConfig(opts Options) (clientv3.Config, error) {
	if len(opts.Endpoints) == 0 {
		return clientv3.Config{}, errors.New("open etcd: no endpoints")
	}
	tlsConf, err := opts.TLS.config(opts.Endpoints)
	if err != nil {
		return clientv3.Config{}, fmt.Errorf("open etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	return clientv3.Config{
		Endpoints:            opts.Endpoints,
		DialTimeout:          opts.DialTimeout,
		DialKeepAliveTime:    10 * time.Second, // the server refuses pings more often than every 5s
		DialKeepAliveTimeout: 5 * time.Second,
		TLS:                  tlsConf,
		Username:             opts.Username,
		Password:             opts.Password,
		Logger:               zap.NewNop(), // our own messages go to opts.Logger
		// gRPC's default reconnect backoff grows to two minutes: a replica
		// would stay stale (not ready, refusing tokens) long after etcd
		// came back. Retry at most every second instead.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: opts.DialTimeout,
		})},
	}, nil
}

func open(ctx context.Context, opts Options, cfg clientv3.Config) (*Store, error) {
	eps := strings.Join(opts.Endpoints, ",")
	cl, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("open etcd %s: %w", eps, err)
	}
	cctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if _, err := cl.Get(cctx, opts.Prefix, clientv3.WithCountOnly(), clientv3.WithPrefix()); err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("open etcd %s: read %s: %w", eps, opts.Prefix, err)
	}
	s := &Store{
		cl:     cl,
		prefix: opts.Prefix,
		opts:   opts,
		log:    opts.Logger,
		done:   make(chan struct{}),

		committers: defaultCommitters,
	}
	s.log.Debug("etcd: opened", "endpoints", eps, "prefix", opts.Prefix)
	return s, nil
}

// config loads the files into a tls.Config; nil when none is set and no
// endpoint asks for https.
func (f TLSFiles) config(endpoints []string) (*tls.Config, error) {
	https := false
	for _, ep := range endpoints {
		https = https || strings.HasPrefix(ep, "https://")
	}
	if f == (TLSFiles{}) && !https {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", f.CAFile)
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file %s, key_file %s: %w", f.CertFile, f.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Client returns the store's etcd client (for leader election on the same
// connection). It is closed by Close.
func (s *Store) Client() *clientv3.Client { return s.cl }

// Prefix returns the prefix every key of the store is under, ending in "/".
func (s *Store) Prefix() string { return s.prefix }

var bucketEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// bucketPrefix is the etcd key prefix of bucket's records.
func (s *Store) bucketPrefix(bucket string) string {
	return s.prefix + "b/" + bucketEscaper.Replace(bucket) + "/"
}

// guardKey is the key every transaction that deletes in bucket writes.
func (s *Store) guardKey(bucket string) string {
	return s.prefix + "g/" + bucketEscaper.Replace(bucket)
}

// reqCtx bounds one etcd request by RequestTimeout.
func (s *Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.RequestTimeout)
}

// mapErr reports a request that failed because the store was closed as
// storage.ErrClosed.
func (s *Store) mapErr(err error) error {
	if s.closed.Load() {
		return fmt.Errorf("%w (%w)", storage.ErrClosed, err)
	}
	if unavailable(err) && !errors.Is(err, storage.ErrUnavailable) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return err
}

// unavailable says whether err means that etcd did not answer in time or
// had no leader: a condition that passes, which a caller answers with
// "retry", not as a failure of its own.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) ||
		errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrLeaderChanged) ||
		errors.Is(err, rpctypes.ErrNotCapable) || errors.Is(err, rpctypes.ErrStopped) {
		return true
	}
	switch status.Code(errors.Unwrap(err)) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// View runs fn in a read-only transaction at one revision. A View whose fn
// reads nothing still reads the revision from the cluster, so View(nop)
// reports whether etcd answers (a readiness check relies on it).
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := storage.Started(ctx, "etcd view"); err != nil {
		return err
	}
	t := s.newTx(ctx, false)
	defer t.done.Store(true)
	if err := fn(t); err != nil {
		return err
	}
	if t.rev == 0 {
		if _, err := t.get(s.prefix, clientv3.WithCountOnly()); err != nil {
			return fmt.Errorf("etcd view: %w", err)
		}
	}
	return nil
}

// Update runs fn and commits its writes if nothing it read changed in the
// meantime; otherwise it runs fn again, at most MaxAttempts times in all.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.run(ctx, "etcd update", fn, (*tx).commit)
}

// run is Update and Batch: fn, then commit, retried on conflict.
func (s *Store) run(ctx context.Context, op string, fn func(storage.Tx) error, commit func(*tx) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if err := storage.Started(ctx, op); err != nil {
		return err
	}
	stale := true // see tx.get
	for attempt := 1; ; attempt++ {
		t := s.newTx(ctx, true)
		t.stale, stale = stale, false
		err := fn(t)
		t.done.Store(true)
		switch {
		case errors.Is(err, errStale):
			// A read found its revision compacted: start over.
		case err != nil:
			return err
		case len(t.order) == 0 && t.stale && t.rev != 0:
			// Read-only, on a snapshot that may be stale and that no
			// commit will check: run again on a linearizable one.
			attempt--
			continue
		case len(t.order) == 0:
			return nil // read-only, linearizable snapshot: nothing to check
		default:
			err = commit(t)
			if err != nil && unavailable(err) && !s.closed.Load() {
				// No answer: the commit may or may not have happened.
				err = s.resolve(t, err)
			}
			if err == nil {
				return nil
			}
			if !errors.Is(err, errConflict) {
				return fmt.Errorf("%s: %w", op, s.mapErr(err))
			}
		}
		if attempt >= s.opts.MaxAttempts {
			return fmt.Errorf("%s: reads changed on each of %d attempts: %w", op, attempt, storage.ErrConflict)
		}
		s.log.Debug("etcd: conflict, retrying", "op", op, "attempt", attempt)
		if err := s.backoff(ctx, attempt); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}

// backoff sleeps a random time up to backoffBase·2^(attempt-1), capped.
func (s *Store) backoff(ctx context.Context, attempt int) error {
	bound := backoffBase << min(attempt-1, 16)
	if bound > backoffMax {
		bound = backoffMax
	}
	timer := time.NewTimer(rand.N(bound) + 1)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return storage.ErrClosed
	}
}

// Close stops every watcher and closes the client.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return storage.ErrClosed
	}
	s.closed.Store(true)
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	if err := s.cl.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd: %w", err)
	}
	s.log.Debug("etcd: closed")
	return nil
}
