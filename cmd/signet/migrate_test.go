package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
	"github.com/signet-auth/signet/storeopen"
)

func migrateCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runMigrate(t.Context(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// dumpStore reads every record of the store a configuration names.
func dumpStore(t *testing.T, path string) map[string]string {
	t.Helper()
	c, err := loadMigrateConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storeopen.Open(t.Context(), &c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string]string{}
	if err := st.View(t.Context(), func(tx storage.Tx) error {
		buckets, err := storage.Buckets(tx)
		if err != nil {
			return err
		}
		for _, b := range buckets {
			if err := tx.Scan(b, "", func(k string, v []byte) error { out[b+"/"+k] = string(v); return nil }); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrate_BoltToEtcdAndBack: `signet migrate` copies a bolt store with
// keys and clients into etcd, where a replica with the same KEK starts and
// signs with the same keys, and back into a new bolt file; every record is
// byte-identical at each step, and a non-empty destination is refused.
func TestMigrate_BoltToEtcdAndBack(t *testing.T) {
	cl := etcdtest.Start(t, etcdtest.Options{})
	kekBytes := newKEK(t)
	t.Setenv("SIGNET_KEK", base64.StdEncoding.EncodeToString(kekBytes))
	boltCfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nkeys:\n  algorithms: [ES256, EdDSA]\n", t.TempDir()))
	etcdCfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nstorage:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: migrated/\nkeys:\n  algorithms: [ES256, EdDSA]\n",
		t.TempDir(), cl.Member(0).Endpoint()))
	backCfg := writeConfig(t, fmt.Sprintf("data_dir: %s\nkeys:\n  algorithms: [ES256, EdDSA]\n", t.TempDir()))

	if _, _, err := initCmd(t, "--config", boltCfg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := clientsCmd(t, "create", "--config", boltCfg, "--id", "svc", "--grant", "client_credentials", "--audience", "api"); err != nil {
		t.Fatal(err)
	}
	// The key set, as the first serve makes it.
	bc, _ := loadMigrateConfig(boltCfg)
	bst, err := storeopen.Open(t.Context(), &bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.Open(t.Context(), keys.Options{Store: bst, KEK: kekBytes, Algorithms: []string{"ES256", "EdDSA"}})
	if err != nil {
		t.Fatal(err)
	}
	km.Close()
	bst.Close()
	orig := dumpStore(t, boltCfg)
	if len(orig) == 0 {
		t.Fatal("empty source store")
	}

	out, err := migrateCmd(t, "--from", boltCfg, "--to", etcdCfg)
	if err != nil {
		t.Fatalf("migrate bolt to etcd: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("migrated %d records", len(orig))) {
		t.Errorf("output does not report %d records:\n%s", len(orig), out)
	}
	if got := dumpStore(t, etcdCfg); !maps.Equal(got, orig) {
		t.Fatalf("etcd store differs from the bolt store: %d records vs %d", len(got), len(orig))
	}
	if _, err := migrateCmd(t, "--from", boltCfg, "--to", etcdCfg); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("migrate into a non-empty store: got %v, want a refusal", err)
	}

	// A replica on the etcd copy decrypts the keys with the same KEK.
	m, _ := startEtcdReplica(t, cl, "r", "migrated/", kekBytes, nil)
	c, _ := loadMigrateConfig(boltCfg)
	st, err := storeopen.Open(t.Context(), &c, nil)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := keys.List(t.Context(), st)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	kidsOf := func(in []keys.Info) []string {
		var out []string
		for _, k := range in {
			out = append(out, k.KID+":"+string(k.State))
		}
		slices.Sort(out)
		return out
	}
	if len(infos) != 4 {
		t.Fatalf("bolt store has %d keys, want 4", len(infos))
	}
	if a, b := kidsOf(infos), kidsOf(m.Keys.Current()); !slices.Equal(a, b) {
		t.Fatalf("replica on etcd serves keys %v, the bolt store had %v", b, a)
	}
	m.Close()
	want := dumpStore(t, etcdCfg) // the replica may have written (audit)

	if out, err := migrateCmd(t, "--from", etcdCfg, "--to", backCfg); err != nil {
		t.Fatalf("migrate etcd to bolt: %v\n%s", err, out)
	}
	if got := dumpStore(t, backCfg); !maps.Equal(got, want) {
		t.Fatalf("bolt copy of the etcd store differs from it: %d records vs %d", len(got), len(want))
	}
}
