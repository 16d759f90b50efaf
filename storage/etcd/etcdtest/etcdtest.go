// Package etcdtest runs etcd inside a test process (go.etcd.io/etcd/server/v3/embed),
// so tests of the etcd backend and of a fleet of replicas need nothing
// installed. Members listen on 127.0.0.1 on free ports, keep their data in
// t.TempDir(), log only errors (to a file beside their data) and are stopped
// by t.Cleanup.
//
// Import it from tests only: it links the whole etcd server.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Heartbeat and election timeouts. etcd's defaults (100 ms, 1 s) make a
// three-member cluster wait a second or two for its first leader; these
// keep that under half a second while leaving room for a loaded 2-core CI
// machine running -race (a too-short election timeout causes spurious
// leader changes, which fail requests).
const (
	tickMs     = 20
	electionMs = 300
)

// startTimeout bounds the wait for a member (or a cluster) to be ready.
const startTimeout = 30 * time.Second

// Options configures Start.
type Options struct {
	// Members is the number of members; 0 means 1.
	Members int
	// Fsync makes members fsync their WAL and database as a real deployment
	// does. Off by default: tests do not survive a machine crash anyway,
	// and fsync on a shared CI disk is slow. Benchmarks turn it on.
	Fsync bool
}

// Cluster is an embedded etcd cluster.
type Cluster struct {
	tb      testing.TB
	token   string
	fsync   bool
	members []*Member

	mu     sync.Mutex
	client *clientv3.Client // lazily created by Client
}

// Member is one etcd member of a Cluster.
type Member struct {
	Name      string
	Dir       string
	ClientURL url.URL
	PeerURL   url.URL

	etcd *embed.Etcd // nil while stopped
}

// Start starts a cluster and waits until every member is ready. The cluster
// is stopped when the test ends.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Members == 0 {
		opts.Members = 1
	}
	// Another process may take a free port between our probe and etcd's
	// listen; try again with new ports.
	var lastErr error
	for range 5 {
		c := &Cluster{tb: tb, token: fmt.Sprintf("etcdtest-%d", time.Now().UnixNano()), fsync: opts.Fsync}
		root := tb.TempDir()
		for i := range opts.Members {
			cu, err := freeURL()
			if err != nil {
				tb.Fatalf("etcdtest: %v", err)
			}
			pu, err := freeURL()
			if err != nil {
				tb.Fatalf("etcdtest: %v", err)
			}
			name := fmt.Sprintf("m%d", i)
			c.members = append(c.members, &Member{Name: name, Dir: filepath.Join(root, name), ClientURL: cu, PeerURL: pu})
		}
		lastErr = c.startAll()
		if lastErr == nil {
			tb.Cleanup(c.stopAll)
			return c
		}
		c.stopAll()
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	tb.Fatalf("etcdtest: start %d members: %v", opts.Members, lastErr)
	return nil
}

// freeURL returns an http URL on 127.0.0.1 with a port free right now.
func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

func (c *Cluster) startAll() error {
	// Members of a new cluster wait for each other, so start them all
	// before waiting for any.
	for _, m := range c.members {
		e, err := embed.StartEtcd(c.config(m, embed.ClusterStateFlagNew))
		if err != nil {
			return fmt.Errorf("start %s: %w", m.Name, err)
		}
		m.etcd = e
	}
	for _, m := range c.members {
		if err := waitReady(m); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) config(m *Member, state string) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.Dir
	cfg.ListenClientUrls = []url.URL{m.ClientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.ClientURL}
	cfg.ListenPeerUrls = []url.URL{m.PeerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.PeerURL}
	var initial []string
	for _, o := range c.members {
		initial = append(initial, o.Name+"="+o.PeerURL.String())
	}
	cfg.InitialCluster = strings.Join(initial, ",")
	cfg.InitialClusterToken = c.token
	cfg.ClusterState = state
	cfg.TickMs = tickMs
	cfg.ElectionMs = electionMs
	cfg.UnsafeNoFsync = !c.fsync
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(filepath.Dir(m.Dir), m.Name+".log")}
	return cfg
}

func waitReady(m *Member) error {
	select {
	case <-m.etcd.Server.ReadyNotify():
		return nil
	case err := <-m.etcd.Err():
		return fmt.Errorf("member %s: %w", m.Name, err)
	case <-time.After(startTimeout):
		return fmt.Errorf("member %s not ready within %s", m.Name, startTimeout)
	}
}

func (c *Cluster) stopAll() {
	c.mu.Lock()
	if c.client != nil {
		_ = c.client.Close()
		c.client = nil
	}
	c.mu.Unlock()
	for _, m := range c.members {
		if m.etcd != nil {
			m.etcd.Close()
			m.etcd = nil
		}
	}
}

// Endpoints returns the client URL of every member, stopped or not.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.ClientURL.String())
	}
	return eps
}

// Members returns the members in start order.
func (c *Cluster) Members() []*Member { return c.members }

// Member returns member i.
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Running reports whether m is started.
func (m *Member) Running() bool { return m.etcd != nil }

// Endpoint returns m's client URL.
func (m *Member) Endpoint() string { return m.ClientURL.String() }

// Stop stops member i (a crash as far as clients can tell; its data stays).
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	m := c.members[i]
	if m.etcd == nil {
		c.tb.Fatalf("etcdtest: stop %s: not running", m.Name)
	}
	m.etcd.Close()
	m.etcd = nil
}

// Restart starts a stopped member i again on the same URLs and data, and
// waits until it has caught up with the cluster and serves clients.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	m := c.members[i]
	if m.etcd != nil {
		c.tb.Fatalf("etcdtest: restart %s: already running", m.Name)
	}
	e, err := embed.StartEtcd(c.config(m, embed.ClusterStateFlagExisting))
	if err != nil {
		c.tb.Fatalf("etcdtest: restart %s: %v", m.Name, err)
	}
	m.etcd = e
	if err := waitReady(m); err != nil {
		c.tb.Fatalf("etcdtest: restart: %v", err)
	}
}

// Client returns a client connected to every member, closed when the
// cluster stops. Its logs are discarded.
func (c *Cluster) Client() *clientv3.Client {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		cl, err := NewClient(c.Endpoints()...)
		if err != nil {
			c.tb.Fatalf("etcdtest: %v", err)
		}
		c.client = cl
	}
	return c.client
}

// NewClient returns a quiet client of the given endpoints; the caller closes it.
func NewClient(endpoints ...string) (*clientv3.Client, error) {
	cl, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return cl, nil
}

// Compact compacts the key-value history up to the current revision (so a
// watch that resumes from an older revision gets ErrCompacted) and returns
// that revision. It talks to the running members only.
func (c *Cluster) Compact(ctx context.Context) int64 {
	c.tb.Helper()
	var eps []string
	for _, m := range c.members {
		if m.Running() {
			eps = append(eps, m.Endpoint())
		}
	}
	cl, err := NewClient(eps...)
	if err != nil {
		c.tb.Fatalf("etcdtest: compact: %v", err)
	}
	defer cl.Close()
	resp, err := cl.Get(ctx, "etcdtest-compact-probe")
	if err != nil {
		c.tb.Fatalf("etcdtest: compact: read revision: %v", err)
	}
	rev := resp.Header.Revision
	if _, err := cl.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		c.tb.Fatalf("etcdtest: compact at %d: %v", rev, err)
	}
	return rev
}
