package federation_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/federation"
	"github.com/signet-auth/signet/storage"
	"github.com/signet-auth/signet/storage/etcd"
	"github.com/signet-auth/signet/storage/etcd/etcdtest"
)

// TestReplayAcrossReplicas: two replicas on one embedded etcd; a pod
// token spent at one (as client_assertion or as the jwt-bearer grant) is
// refused at the other: the jti is spent in the shared store.
func TestReplayAcrossReplicas(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{})
	open := func() storage.Store {
		st, err := etcd.Open(context.Background(), etcd.Options{Endpoints: cluster.Endpoints(), Prefix: "/fed/"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	kube := newKubeIssuer(t, nil)
	const fleet = "https://signet.example" // the issuer the replicas share
	policy := federation.Issuer{Issuer: kube.srv.URL, Audiences: []string{fleet}}
	a := newSignetOn(t, open(), fetcher(t, kube.srv), policy)
	b := newSignetOn(t, open(), fetcher(t, kube.srv), policy)
	a.workload("payments-api", clients.FederatedIdentity{Issuer: kube.srv.URL, Subject: "system:serviceaccount:payments:*"})
	for deadline := time.Now().Add(10 * time.Second); ; { // b learns the client from the store's watch
		_, err := b.srv.Clients().Lookup(context.Background(), "payments-api")
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("replica b: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	now := a.clock.Now()
	for _, form := range []func(string) url.Values{assertionForm, bearerForm} {
		tok := kube.podToken(now, "payments", "api", fleet, nil)
		if code, body := a.post("/oauth2/token", form(tok), "", ""); code != http.StatusOK {
			t.Fatalf("replica a: %d %v", code, body)
		}
		code, body := b.post("/oauth2/token", form(tok), "", "")
		if code/100 != 4 || !strings.Contains(body["error_description"].(string), "already used") {
			t.Errorf("replay at replica b: %d %v", code, body)
		}
	}
}
