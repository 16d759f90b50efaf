// Package setsign signs exported key sets: `signet jwks export` writes the
// JWK Set that /.well-known/jwks.json serves as a compact JWS (typ
// jwk-set+jwt, the shape OpenID Federation uses for signed JWK Sets) with the
// claims iss, iat and exp, for verifiers that cannot reach Signet (the jwks
// module's NewSignedSetVerifier loads it with pinned set-signing keys).
//
// The set-signing keys are a key set of their own with the same lifecycle
// as the token keys (pending, active, retired, revoked; rotation in one
// transaction; custody per algorithm), kept by a keys.Manager in a bucket of
// their own, so a token key can never sign a set nor a set-signing key a
// token. Verifiers pin the set-signing keys' JWK Set (Signers), which holds
// the pending key too: a rotation of the set-signing key does not strand a
// verifier that pinned the set before it.
package setsign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/signet-auth/signet/keys"
	"github.com/signet-auth/signet/keys/custody"
	"github.com/signet-auth/signet/storage"
)

// Bucket holds the set-signing key records.
const Bucket = keys.SetSignBucket

// Alg is the set-signing algorithm: ES256, small and supported by every
// JOSE library (and by PKCS#11 tokens).
const Alg = "ES256"

// Type is the typ header of a signed set.
const Type = "jwk-set+jwt"

// Open opens the set-signing key set in st. opts are the token keys'
// options (KEK, custody, logger, clock); Store and Algorithms are set here.
func Open(ctx context.Context, st storage.Store, opts keys.Options) (*keys.Manager, error) {
	opts.Store = renamed{st}
	opts.Algorithms = []string{Alg}
	if c, ok := opts.Custody[Alg]; ok {
		opts.Custody = map[string]custody.Custody{Alg: c}
	} else {
		opts.Custody = nil
	}
	m, err := keys.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("set-signing keys: %w", err)
	}
	return m, nil
}

// Export signs jwksDoc (a JWK Set document, as jwksdoc renders it) for
// issuer with the active set-signing key of signer, valid from now for ttl.
func Export(signer *keys.Manager, issuer string, jwksDoc []byte, now time.Time, ttl time.Duration) ([]byte, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("export: ttl %s is not positive", ttl)
	}
	var doc struct {
		Keys json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwksDoc, &doc); err != nil || len(doc.Keys) == 0 {
		return nil, fmt.Errorf("export: not a JWK Set: %v", err)
	}
	payload, err := json.Marshal(struct {
		Iss  string          `json:"iss"`
		Iat  int64           `json:"iat"`
		Exp  int64           `json:"exp"`
		Keys json.RawMessage `json:"keys"`
	}{issuer, now.Unix(), now.Add(ttl).Unix(), doc.Keys})
	if err != nil {
		return nil, err
	}
	k, err := signer.SigningKey(Alg)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, fmt.Errorf("export: set-signing key %s: %w", k.KeyID(), err)
	}
	hdr := jws.NewHeaders()
	for n, v := range map[string]any{jws.KeyIDKey: k.KeyID(), jws.TypeKey: Type} {
		if err := hdr.Set(n, v); err != nil {
			return nil, err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, raw, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return nil, fmt.Errorf("export: sign with %s: %w", k.KeyID(), err)
	}
	return out, nil
}

// Signers is the JWK Set of the set-signing public keys that may sign sets
// (active and pending): what verifiers pin. A retired set-signing key is
// left out: nothing should be accepted from it any more.
func Signers(signer *keys.Manager) ([]byte, error) {
	live := map[string]bool{}
	for _, i := range signer.Current() {
		if i.State == keys.StateActive || i.State == keys.StatePending {
			live[i.KID] = true
		}
	}
	set, _ := signer.PublicSet()
	out := jwk.NewSet()
	for i := range set.Len() {
		k, _ := set.Key(i)
		if live[k.KeyID()] {
			if err := out.AddKey(k); err != nil {
				return nil, err
			}
		}
	}
	return json.MarshalIndent(out, "", "  ")
}

// renamed is st with the keys bucket swapped with Bucket, so that a
// keys.Manager keeps the set-signing keys apart from the token keys. Every
// other bucket (the audit trail) is st's own.
type renamed struct{ storage.Store }

// rename swaps the two key buckets, so that a Manager's reads of "keys"
// reach the set-signing keys, and keys.Orphans, which reads both, still
// sees both through this store.
func rename(b string) string {
	switch b {
	case keys.Bucket:
		return Bucket
	case Bucket:
		return keys.Bucket
	}
	return b
}

func (r renamed) View(ctx context.Context, fn func(storage.Tx) error) error {
	return r.Store.View(ctx, func(tx storage.Tx) error { return fn(renamedTx{tx}) })
}

func (r renamed) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return r.Store.Update(ctx, func(tx storage.Tx) error { return fn(renamedTx{tx}) })
}

func (r renamed) Batch(ctx context.Context, fn func(storage.Tx) error) error {
	return r.Store.Batch(ctx, func(tx storage.Tx) error { return fn(renamedTx{tx}) })
}

func (r renamed) Watch(ctx context.Context, bucket string) <-chan storage.Event {
	return r.Store.Watch(ctx, rename(bucket))
}

type renamedTx struct{ tx storage.Tx }

func (t renamedTx) Get(b, k string) ([]byte, error) { return t.tx.Get(rename(b), k) }
func (t renamedTx) Put(b, k string, v []byte) error { return t.tx.Put(rename(b), k, v) }
func (t renamedTx) Delete(b, k string) error        { return t.tx.Delete(rename(b), k) }
func (t renamedTx) Scan(b, p string, fn func(string, []byte) error) error {
	return t.tx.Scan(rename(b), p, fn)
}

// NextIssuedAt is the iat for a set exported at now after prev (the
// previous export, or nil): now, or one second after prev's iat if that is
// not earlier. Verifiers refuse a set whose iat is not newer than the one
// they hold (a replay), so two exports must never share a second.
func NextIssuedAt(now time.Time, prev []byte) time.Time {
	now = now.Truncate(time.Second)
	parts := strings.Split(strings.TrimSpace(string(prev)), ".")
	if len(parts) != 3 {
		return now
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return now
	}
	var p struct {
		Iat int64 `json:"iat"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return now
	}
	if last := time.Unix(p.Iat, 0); !now.After(last) {
		return last.Add(time.Second)
	}
	return now
}
