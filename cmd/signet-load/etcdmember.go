package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// runEtcdMember is the child process `signet-load etcd-member`: one member
// of a three-member etcd cluster (go.etcd.io/etcd/server/v3/embed, as
// storage/etcd/etcdtest runs it), as its own process so that the soak can
// SIGKILL it and the benchmark can read its CPU time. etcd's default
// heartbeat and election timeouts, and fsync on, as in production.
func runEtcdMember(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("etcd-member", flag.ContinueOnError)
	name := fs.String("name", "", "member name")
	dir := fs.String("dir", "", "data directory")
	client := fs.String("client", "", "client URL")
	peer := fs.String("peer", "", "peer URL")
	cluster := fs.String("cluster", "", "initial cluster: name=peerURL,...")
	state := fs.String("state", embed.ClusterStateFlagNew, "new or existing")
	token := fs.String("token", "signet-load", "initial cluster token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cu, err := url.Parse(*client)
	if err != nil {
		return err
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*dir), 0o700); err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster, cfg.InitialClusterToken, cfg.ClusterState = *cluster, *token, *state
	cfg.Logger, cfg.LogLevel = "zap", "error"
	cfg.LogOutputs = []string{filepath.Join(filepath.Dir(*dir), *name+".etcd.log")}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", *name, err)
	}
	defer e.Close()
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", *name, err)
	}
}

// etcdCluster is three etcd member processes.
type etcdCluster struct {
	members []*proc
	clients []string // client URLs
}

// startEtcd starts a three-member cluster under l.dir/etcd and waits until
// every member reports healthy.
func (l *lab) startEtcd(ctx context.Context, n int) (*etcdCluster, error) {
	c := &etcdCluster{}
	var peers, initial []string
	for i := range n {
		ca, err := freeAddr()
		if err != nil {
			return nil, err
		}
		pa, err := freeAddr()
		if err != nil {
			return nil, err
		}
		c.clients = append(c.clients, "http://"+ca)
		peers = append(peers, "http://"+pa)
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i, pa))
	}
	for i := range n {
		name := fmt.Sprintf("e%d", i)
		dir := filepath.Join(l.dir, "etcd", name)
		p := l.add(newProc("etcd "+name, filepath.Join(l.dir, "etcd-"+name+".out"), l.self, nil, "etcd-member",
			"-name", name, "-dir", dir, "-client", c.clients[i], "-peer", peers[i], "-cluster", strings.Join(initial, ",")))
		if err := p.start(); err != nil {
			return nil, err
		}
		c.members = append(c.members, p)
	}
	for i, p := range c.members {
		if err := waitOK(ctx, p, c.clients[i]+"/health", 60*time.Second); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// restart starts member i again on its data ("existing" cluster state).
func (c *etcdCluster) restart(i int) error {
	p := c.members[i]
	for j, a := range p.args {
		if a == "-state" {
			p.args = p.args[:j]
			break
		}
	}
	p.args = append(p.args, "-state", embed.ClusterStateFlagExisting)
	return p.start()
}
