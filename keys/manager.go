package keys

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/signet-auth/signet/keys/custody"
	"github.com/signet-auth/signet/storage"
)

// ErrNoSigningKey is returned by SigningKey when no active key of the
// requested algorithm is loaded.
var ErrNoSigningKey = errors.New("keys: no active signing key")

// DecryptError names the key whose private half could not be opened.
type DecryptError struct {
	KID string
	Err error
}

func (e *DecryptError) Error() string {
	return fmt.Sprintf("cannot decrypt the private key of kid %s: %v", e.KID, e.Err)
}

func (e *DecryptError) Unwrap() error { return e.Err }

// Options configure a Manager. Zero values mean the documented defaults.
type Options struct {
	Store storage.Store
	// Custody chooses, per algorithm, where new keys of it are generated
	// (keys/custody); an algorithm not named here uses the sealed-in-store
	// custody. Keys already stored stay where they are: a rotation moves
	// the next key into a newly configured custody. Every custody a stored
	// key names must be here (under any algorithm) for the key to load.
	Custody map[string]custody.Custody
	// KEK encrypts private keys at rest (AES-256-GCM); exactly 32 bytes.
	KEK []byte
	// Algorithms are the live signing algorithms; default [RS256].
	Algorithms []string
	// RSABits is the modulus size for RS256 and PS256; default 2048.
	RSABits int
	// MaxTokenTTL is the longest lifetime of a token any key signs; a retired
	// key stays published this long (plus PurgeLeeway). Default 1h.
	MaxTokenTTL time.Duration
	// PurgeLeeway is extra time a retired key stays published, for clock
	// skew between Signet and verifiers. Default 5m.
	PurgeLeeway time.Duration
	// MinPublishAge is how long a pending key must have been published before
	// a non-forced Rotate may activate it: the JWKS cache lifetime. Default 0.
	MinPublishAge time.Duration
	// Schedule, when set, gives the time of the next scheduled rotation
	// after a rotation at t (the cron spec's Next). Every rotation stores
	// it with the keys, so the schedule belongs to the fleet: a new leader
	// reads when the next rotation is due (NextRotation) rather than
	// starting a period of its own.
	Schedule func(t time.Time) time.Time
	Logger   *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
}

// Manager owns the key set in storage and an in-memory snapshot of it.
// All methods are safe for concurrent use.
type Manager struct {
	opts      Options
	log       *slog.Logger
	custodies map[string]custody.Custody // by name; "store" always

	snap      atomic.Pointer[snapshot]
	reloadMu  sync.Mutex // serialises reloads so the last one reads the newest state
	version   atomic.Uint64
	rotations atomic.Uint64

	countsMu sync.Mutex
	counts   map[algReason]uint64

	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// snapshot is one consistent view of the key set, swapped atomically.
type snapshot struct {
	version uint64
	infos   []Info             // every stored key, active first
	signers map[string]jwk.Key // alg → private key of the active key
	public  jwk.Set            // pending + active + retired, public members only
	next    time.Time          // the stored next scheduled rotation; zero if none
}

// Open loads the key set from storage, creates what is missing (one active and
// one pending key per configured algorithm; on an empty store this is the
// first key set), retires the keys of algorithms no longer configured, and
// starts following changes made by other replicas. Close stops that.
//
// A private key that cannot be decrypted with opts.KEK is an error naming
// its kid; Open never replaces an unreadable key set with a new one.
func Open(ctx context.Context, opts Options) (*Manager, error) {
	m, err := newManager(opts)
	if err != nil {
		return nil, err
	}
	// Subscribe before the first load: a change committed between the load
	// and a later subscription would be missed for good (the replica would
	// sign with a retired key until the next change).
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	events := m.opts.Store.Watch(watchCtx, Bucket)
	if err := m.reload(ctx); err != nil {
		cancel()
		return nil, err
	}
	if err := m.ensure(ctx); err != nil {
		cancel()
		return nil, err
	}
	m.stopWatch = cancel
	m.watchDone = make(chan struct{})
	go m.watch(watchCtx, events)
	return m, nil
}

func newManager(opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("keys: no store")
	}
	if len(opts.KEK) != KEKSize {
		return nil, fmt.Errorf("keys: key-encryption key is %d bytes, want %d", len(opts.KEK), KEKSize)
	}
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = []string{"RS256"}
	}
	for _, a := range opts.Algorithms {
		if !ValidAlgorithm(a) {
			return nil, fmt.Errorf("keys: unknown algorithm %q (supported: %v)", a, Algorithms())
		}
	}
	if opts.RSABits == 0 {
		opts.RSABits = 2048
	}
	if !ValidRSABits(opts.RSABits) {
		return nil, fmt.Errorf("keys: RSA size %d not allowed (use one of %v)", opts.RSABits, rsaSizes)
	}
	// Zero means the default; a negative lifetime would purge keys that
	// still verify live tokens, or promote pending keys before verifiers
	// have them.
	for _, o := range []struct {
		name string
		d    time.Duration
	}{{"MaxTokenTTL", opts.MaxTokenTTL}, {"PurgeLeeway", opts.PurgeLeeway}, {"MinPublishAge", opts.MinPublishAge}} {
		if o.d < 0 {
			return nil, fmt.Errorf("keys: %s is %s, want a positive duration (or 0 for the default)", o.name, o.d)
		}
	}
	if opts.MaxTokenTTL == 0 {
		opts.MaxTokenTTL = time.Hour
	}
	if opts.PurgeLeeway == 0 {
		opts.PurgeLeeway = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	m := &Manager{opts: opts, log: opts.Logger, custodies: map[string]custody.Custody{}}
	m.custodies[custody.Store] = sealedCustody{kek: opts.KEK, rand: opts.Rand}
	for alg, c := range opts.Custody {
		if !ValidAlgorithm(alg) {
			return nil, fmt.Errorf("keys: custody for unknown algorithm %q (supported: %v)", alg, Algorithms())
		}
		if prev, ok := m.custodies[c.Name()]; ok && c.Name() != custody.Store && prev != c {
			return nil, fmt.Errorf("keys: two custodies named %q", c.Name())
		}
		m.custodies[c.Name()] = c
	}
	return m, nil
}

// custodyFor is where new keys of alg are generated.
func (m *Manager) custodyFor(alg string) custody.Custody {
	if c, ok := m.opts.Custody[alg]; ok {
		return c
	}
	return m.custodies[custody.Store]
}

// custodyOf is where the private half of a stored key lives.
func (m *Manager) custodyOf(r record) (custody.Custody, error) {
	name := cmp.Or(r.Custody, custody.Store)
	c, ok := m.custodies[name]
	if !ok {
		return nil, fmt.Errorf("key %s is held in custody %q, which is not configured (keys.custody.pkcs11 in the config)", r.KID, name)
	}
	return c, nil
}

// Close stops following changes. It does not close the store.
func (m *Manager) Close() error {
	if m.stopWatch != nil {
		m.stopWatch()
		<-m.watchDone
	}
	return nil
}

// SigningKey returns the active private key for alg, with kid and alg set.
// It reads memory only: this is the token hot path.
func (m *Manager) SigningKey(alg string) (jwk.Key, error) {
	k, ok := m.snap.Load().signers[alg]
	if !ok {
		return nil, fmt.Errorf("%w for %s", ErrNoSigningKey, alg)
	}
	return k, nil
}

// PublicSet returns the published keys (pending, active, retired) and a
// version that changes whenever the snapshot is replaced. Callers must not
// modify the set.
func (m *Manager) PublicSet() (jwk.Set, uint64) {
	s := m.snap.Load()
	return s.public, s.version
}

// Current returns the keys as of the last loaded snapshot, active first.
func (m *Manager) Current() []Info { return slices.Clone(m.snap.Load().infos) }

// Rotations counts rotations this manager committed.
func (m *Manager) Rotations() uint64 { return m.rotations.Load() }

// Reason says why a key became active: what signet_key_rotations_total
// counts by.
type Reason string

const (
	ReasonSchedule Reason = "schedule" // RotateScheduled
	ReasonManual   Reason = "manual"   // Rotate (CLI, admin API)
	ReasonRevoke   Reason = "revoke"   // Revoke of an active key promoted another
)

// Reasons lists every Reason, for metrics that report zeros too.
func Reasons() []Reason { return []Reason{ReasonSchedule, ReasonManual, ReasonRevoke} }

// RotationCount is how many times this manager made a new key of Alg
// active for Reason.
type RotationCount struct {
	Alg    string
	Reason Reason
	N      uint64
}

type algReason struct {
	alg    string
	reason Reason
}

// RotationCounts returns a count for every live algorithm and every reason,
// zeros included, plus any algorithm no longer live that has rotated.
func (m *Manager) RotationCounts() []RotationCount {
	m.countsMu.Lock()
	defer m.countsMu.Unlock()
	var out []RotationCount
	seen := map[algReason]bool{}
	for _, alg := range m.opts.Algorithms {
		for _, r := range Reasons() {
			k := algReason{alg, r}
			seen[k] = true
			out = append(out, RotationCount{Alg: alg, Reason: r, N: m.counts[k]})
		}
	}
	for k, n := range m.counts {
		if !seen[k] {
			out = append(out, RotationCount{Alg: k.alg, Reason: k.reason, N: n})
		}
	}
	return out
}

func (m *Manager) countRotation(alg string, r Reason) {
	m.countsMu.Lock()
	defer m.countsMu.Unlock()
	if m.counts == nil {
		m.counts = map[algReason]uint64{}
	}
	m.counts[algReason{alg, r}]++
}

// Algorithms returns the live algorithms, in configured order.
func (m *Manager) Algorithms() []string { return slices.Clone(m.opts.Algorithms) }

// Ready reports an error unless every live algorithm has an active key loaded.
func (m *Manager) Ready() error {
	s := m.snap.Load()
	for _, alg := range m.opts.Algorithms {
		if _, ok := s.signers[alg]; !ok {
			return fmt.Errorf("%w for %s", ErrNoSigningKey, alg)
		}
	}
	return nil
}

// List reads every key from storage (not the snapshot).
func (m *Manager) List(ctx context.Context) ([]Info, error) {
	var recs []record
	err := m.opts.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		recs, _, err = loadRecords(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	infos := make([]Info, len(recs))
	for i, r := range recs {
		infos[i] = r.Info
	}
	sortInfos(infos)
	return infos, nil
}

// List reads every key in st without a KEK: what `signet keys list` needs
// offline.
func List(ctx context.Context, st storage.Store) ([]Info, error) {
	m := &Manager{opts: Options{Store: st}}
	return m.List(ctx)
}

// CheckKEK opens, with kek, the private half of every key in st that keeps
// one (pending and active keys): the proof that kek is the key the store's
// keys were sealed with. Restore relies on it rather than on a fingerprint
// written in a file. The error is a *DecryptError naming the first key
// that does not open.
func CheckKEK(ctx context.Context, st storage.Store, kek []byte) error {
	var recs []record
	err := st.View(ctx, func(tx storage.Tx) error {
		var err error
		recs, _, err = loadRecords(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	sealed := sealedCustody{kek: kek}
	for _, r := range recs {
		// Keys held in another custody (an HSM) have no sealed half to open.
		if (r.State != StateActive && r.State != StatePending) || len(r.Private) == 0 {
			continue
		}
		if _, err := sealed.Load(ctx, r.KID, r.Alg, r.Private); err != nil {
			return err
		}
	}
	return nil
}

func loadRecords(tx storage.Tx) ([]record, time.Time, error) {
	var recs []record
	var next time.Time
	err := tx.Scan(Bucket, "", func(kid string, v []byte) error {
		if kid == scheduleKey {
			var err error
			next, err = decodeSchedule(v)
			return err
		}
		r, err := decodeRecord(kid, v)
		if err != nil {
			return err
		}
		recs = append(recs, r)
		return nil
	})
	return recs, next, err
}

// reload reads the key set and swaps the snapshot. It runs after every
// change this manager commits and on every watch event.
func (m *Manager) reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	var recs []record
	var next time.Time
	err := m.opts.Store.View(ctx, func(tx storage.Tx) error {
		var err error
		recs, next, err = loadRecords(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	s, err := m.build(ctx, recs)
	if err != nil {
		return err
	}
	s.next = next
	s.version = m.version.Add(1)
	m.snap.Store(s)
	return nil
}

// build decrypts the keys that may sign (active and pending: a pending key
// that cannot be opened must fail now, not at promotion) and assembles the
// public set.
func (m *Manager) build(ctx context.Context, recs []record) (*snapshot, error) {
	s := &snapshot{signers: make(map[string]jwk.Key), public: jwk.NewSet()}
	infos := make([]Info, 0, len(recs))
	for _, r := range recs {
		infos = append(infos, r.Info)
	}
	sortInfos(infos)
	s.infos = infos
	byKID := make(map[string]record, len(recs))
	for _, r := range recs {
		byKID[r.KID] = r
	}
	for _, info := range infos {
		r := byKID[info.KID]
		if r.State == StateRevoked {
			continue
		}
		pub, err := jwk.ParseKey(r.Public)
		if err != nil {
			return nil, fmt.Errorf("load key %s: public key: %w", r.KID, err)
		}
		if isPriv, _ := jwk.IsPrivateKey(pub); isPriv {
			return nil, fmt.Errorf("load key %s: stored public key has private members", r.KID)
		}
		if err := s.public.AddKey(pub); err != nil {
			return nil, fmt.Errorf("load key %s: %w", r.KID, err)
		}
		if r.State != StateActive && r.State != StatePending {
			continue
		}
		priv, err := m.signingKey(ctx, r, pub)
		if err != nil {
			return nil, err
		}
		if r.State == StateActive {
			if _, dup := s.signers[r.Alg]; dup {
				return nil, fmt.Errorf("load keys: two active %s keys (second: %s)", r.Alg, r.KID)
			}
			s.signers[r.Alg] = priv
		}
	}
	return s, nil
}

// signingKey loads the private half of r from its custody. A key held in
// memory becomes a private JWK, what the token hot path signs with directly;
// a key held elsewhere becomes an externalKey whose every signature is a
// call into its custody.
func (m *Manager) signingKey(ctx context.Context, r record, pub jwk.Key) (jwk.Key, error) {
	c, err := m.custodyOf(r)
	if err != nil {
		return nil, err
	}
	if c.Name() == custody.Store {
		priv, err := c.Load(ctx, r.KID, r.Alg, r.Private)
		if err != nil {
			return nil, err
		}
		k, err := privateJWK(priv, r.KID, r.Alg)
		if err != nil {
			return nil, &DecryptError{KID: r.KID, Err: err}
		}
		return k, nil
	}
	signer, err := c.Load(ctx, r.KID, r.Alg, r.Handle)
	if err != nil {
		return nil, fmt.Errorf("load key %s from %s custody: %w", r.KID, c.Name(), err)
	}
	return newExternalKey(pub, signer)
}

// watch reloads the snapshot when another replica changes the key set.
// events is subscribed by Open before its first load.
func (m *Manager) watch(ctx context.Context, events <-chan storage.Event) {
	defer close(m.watchDone)
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			// Coalesce a burst (one rotation writes several records).
			for drained := false; !drained; {
				select {
				case _, ok := <-events:
					if !ok {
						return
					}
				default:
					drained = true
				}
			}
			if err := m.reload(ctx); err != nil && ctx.Err() == nil {
				m.log.LogAttrs(ctx, slog.LevelError, "reload keys after change", slog.String("err", err.Error()))
			}
		}
	}
}

// stateOrder puts active keys first in listings and in the JWKS.
func stateOrder(s State) int {
	switch s {
	case StateActive:
		return 0
	case StatePending:
		return 1
	case StateRetired:
		return 2
	}
	return 3
}

func sortInfos(infos []Info) {
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(
			cmp.Compare(stateOrder(a.State), stateOrder(b.State)),
			cmp.Compare(a.Alg, b.Alg),
			b.CreatedAt.Compare(a.CreatedAt),
			cmp.Compare(a.KID, b.KID),
		)
	})
}

// NextRotation is the stored time of the next scheduled rotation, as every
// replica sees it (the snapshot follows the store); zero before the first
// rotation that stored one.
func (m *Manager) NextRotation() time.Time { return m.snap.Load().next }
