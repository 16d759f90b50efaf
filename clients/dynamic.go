package clients

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/signet-auth/signet/storage"
)

// Clients that arrive on their own (package registration): dynamically
// registered clients (RFC 7591) are stored like any other, marked
// Dynamic, listed in an index that counts them and remembers when each
// was last used; clients identified by a client ID metadata document (an
// https URL as client_id) are never stored: a resolver set with
// SetResolver builds them from the fetched document, and Lookup, the one
// place every endpoint finds a client, asks it.

// dynamicBucket indexes the dynamically registered clients: client id →
// dynamicUse. It is how the cap counts them (keys only, no decoding) and
// what the purge of unused clients reads; a use is written here only, so
// it does not reload the client cache of every replica.
const dynamicBucket = "dynamic_clients"

// MetadataDocumentInstance is the instance of every client known by its
// metadata document: its identity is the URL, which no one can delete and
// create again, so consents and codes stay bound to the URL.
const MetadataDocumentInstance = "metadata-document"

// ErrTooManyDynamic is returned by CreateDynamic when the store holds the
// maximum number of dynamic clients.
var ErrTooManyDynamic = errors.New("clients: too many dynamically registered clients")

type dynamicUse struct {
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

// IsMetadataDocumentID reports whether id is a client ID metadata document
// URL (draft-ietf-oauth-client-id-metadata-document §3): https, a path
// other than "/", no fragment, no credentials, no dot segments; at most
// 512 characters. No stored client has such an id (ValidID refuses ':').
func IsMetadataDocumentID(id string) bool {
	if len(id) > 512 || !strings.HasPrefix(id, "https://") || strings.ContainsAny(id, "#\\ ") {
		return false
	}
	u, err := url.Parse(id)
	if err != nil || u.Host == "" || u.User != nil || u.Path == "" || u.Path == "/" || u.RawQuery != "" {
		return false
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// MetadataDocumentHost is the host a metadata-document client's identity
// comes from, "" for any other client.
func (cl *Client) MetadataDocumentHost() string {
	if !IsMetadataDocumentID(cl.ID) {
		return ""
	}
	u, _ := url.Parse(cl.ID)
	return u.Host
}

// validateDynamic is what no client that registered itself may have,
// whoever edits it later: first-party standing (no consent), grants that
// act without a user, or Signet's own scopes.
func validateDynamic(cl *Client, bad func(field, problem string)) {
	if !cl.Dynamic {
		return
	}
	if cl.FirstParty {
		bad("first_party", "a dynamically registered client is never first-party")
	}
	for _, g := range cl.GrantTypes {
		if g == GrantClientCredentials || g == GrantPassword || ExtensionGrant(g) {
			bad("grant_types", "a dynamically registered client may not use "+g)
		}
	}
	for _, s := range cl.Scopes {
		if strings.HasPrefix(s, "signet:") {
			bad("scopes", "a dynamically registered client may not hold "+s)
		}
	}
	if cl.Introspect {
		bad("introspect", "a dynamically registered client may not introspect tokens")
	}
}

// HashToken is the SHA-256 of a high-entropy token (a registration access
// token): like client secrets, it needs no slow hash.
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// CreateDynamic stores a dynamically registered client (marked Dynamic)
// with the hash of its registration access token, unless the store
// already holds max dynamic clients (ErrTooManyDynamic; max <= 0: no
// cap). inTx runs in the same transaction (the audit event). The secret,
// for a client that authenticates with one, is returned here only.
func (c *Registry) CreateDynamic(ctx context.Context, spec Client, tokenHash []byte, max int, inTx func(tx storage.Tx, cl Client) error) (Client, string, error) {
	spec.Dynamic, spec.FirstParty = true, false
	return c.createWith(ctx, spec, func(tx storage.Tx, rec *Record) error {
		rec.RegistrationTokenHash = tokenHash
		if max > 0 {
			n := 0
			if err := tx.Scan(dynamicBucket, "", func(string, []byte) error { n++; return nil }); err != nil {
				return err
			}
			if n >= max {
				return ErrTooManyDynamic
			}
		}
		b, _ := json.Marshal(dynamicUse{CreatedAt: rec.CreatedAt})
		if err := tx.Put(dynamicBucket, rec.ID, b); err != nil {
			return err
		}
		if inTx != nil {
			return inTx(tx, rec.Client)
		}
		return nil
	})
}

// DeleteWith is Delete with inTx run in the same transaction (the audit
// event of a client deleting itself, RFC 7592 §2.3).
func (c *Registry) DeleteWith(ctx context.Context, id string, inTx func(tx storage.Tx) error) error {
	err := c.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(clientsBucket, id); err != nil {
			return err
		}
		if err := tx.Delete(dynamicBucket, id); err != nil {
			return err
		}
		if inTx != nil {
			if err := inTx(tx); err != nil {
				return err
			}
		}
		return tx.Delete(clientsBucket, id)
	})
	if err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	c.refresh(ctx, id)
	return nil
}

// PurgeUnusedDynamic deletes the dynamically registered clients neither
// used nor created since cutoff, each in its own transaction that checks
// again, with inTx (the audit event) in it.
func (c *Registry) PurgeUnusedDynamic(ctx context.Context, cutoff time.Time, inTx func(tx storage.Tx, id string) error) storage.Purged {
	p := storage.Purged{Kind: "dynamic_clients"}
	var ids []string
	err := c.store.View(ctx, func(tx storage.Tx) error {
		ids = ids[:0]
		return tx.Scan(dynamicBucket, "", func(k string, v []byte) error {
			if since, ok := unusedSince(v, cutoff); ok {
				ids = append(ids, k)
				if p.Oldest.IsZero() || since.Before(p.Oldest) {
					p.Oldest = since
				}
			}
			return nil
		})
	})
	if err != nil {
		p.Err = fmt.Errorf("purge dynamic clients: %w", err)
		return p
	}
	for _, id := range ids {
		deleted := false
		err := c.store.Update(ctx, func(tx storage.Tx) error {
			deleted = false
			v, err := tx.Get(dynamicBucket, id)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if _, ok := unusedSince(v, cutoff); !ok {
				return nil // used meanwhile
			}
			if err := tx.Delete(dynamicBucket, id); err != nil {
				return err
			}
			if err := tx.Delete(clientsBucket, id); err != nil {
				return err
			}
			deleted = true
			if inTx != nil {
				return inTx(tx, id)
			}
			return nil
		})
		if err != nil {
			p.Err = fmt.Errorf("purge dynamic client %s: %w", id, err)
			return p
		}
		if deleted {
			p.Deleted++
			c.refresh(ctx, id)
		}
	}
	return p
}

// unusedSince reads an index value: when the client was last used (or
// created), and whether that is before cutoff.
func unusedSince(v []byte, cutoff time.Time) (time.Time, bool) {
	var u dynamicUse
	if err := json.Unmarshal(v, &u); err != nil {
		return time.Time{}, false // unreadable: kept, never deleted on a guess
	}
	last := u.CreatedAt
	if u.LastUsed.After(last) {
		last = u.LastUsed
	}
	return last, last.Before(cutoff)
}

// Resolver builds the client of a metadata document URL; its errors wrap
// storage.ErrNotFound when there is no such client to be had.
type Resolver func(ctx context.Context, id string) (*Entry, error)

// SetResolver makes Lookup ask r for client ids that are metadata
// document URLs. Call it before serving.
func (c *Registry) SetResolver(r Resolver) { c.resolver.Store(&r) }

// SetUseTracking makes Lookup note, at most once per every and replica,
// that a dynamically registered client was used (the purge of unused
// clients reads it). Call it before serving; 0 turns it off.
func (c *Registry) SetUseTracking(every time.Duration) { c.touchEvery.Store(int64(every)) }

// resolve asks the resolver for a metadata-document client.
func (c *Registry) resolve(ctx context.Context, id string) (*Entry, bool, error) {
	r := c.resolver.Load()
	if r == nil || !IsMetadataDocumentID(id) {
		return nil, false, nil
	}
	e, err := (*r)(ctx, id)
	return e, true, err
}

// used notes a use of a dynamic client, writing it in the background at
// most once per touchEvery: the hot path pays a map read.
func (c *Registry) used(e *Entry) {
	every := time.Duration(c.touchEvery.Load())
	if every <= 0 || !e.Record.Dynamic {
		return
	}
	now := c.now()
	id := e.Record.ID
	if v, ok := c.touched.Load(id); ok && now.Sub(v.(time.Time)) < every {
		return
	}
	if v, loaded := c.touched.Swap(id, now); loaded && now.Sub(v.(time.Time)) < every {
		return // another request got there first
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.store.Update(ctx, func(tx storage.Tx) error {
			v, err := tx.Get(dynamicBucket, id)
			if err != nil {
				return err // deleted meanwhile: nothing to note
			}
			var u dynamicUse
			if err := json.Unmarshal(v, &u); err != nil {
				return err
			}
			u.LastUsed = now.UTC()
			b, _ := json.Marshal(u)
			return tx.Put(dynamicBucket, id, b)
		})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			c.touched.Delete(id) // try again at the next use
			c.log.LogAttrs(ctx, slog.LevelWarn, "note use of dynamic client", slog.String("client_id", id), slog.String("err", err.Error()))
		}
	}()
}

// LastUsed returns when a dynamic client was last noted in use (zero when
// never) and whether it is indexed as dynamic.
func (c *Registry) LastUsed(ctx context.Context, id string) (time.Time, bool, error) {
	var u dynamicUse
	found := false
	err := c.store.View(ctx, func(tx storage.Tx) error {
		v, err := tx.Get(dynamicBucket, id)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		found = true
		return json.Unmarshal(v, &u)
	})
	return u.LastUsed, found, err
}

// PrepareExternal fills in the defaults of a client that is not stored
// (one built from its metadata document), validates it as Create would,
// and returns it prepared for the endpoints. Its id must be a metadata
// document URL; it is Dynamic and never first-party.
func (c *Registry) PrepareExternal(cl Client) (*Entry, error) {
	if !IsMetadataDocumentID(cl.ID) {
		return nil, &ValidationError{Field: "client_id", Problem: "must be an https URL with a path"}
	}
	cl.Dynamic, cl.FirstParty = true, false
	c.fillDefaults(&cl)
	if err := c.validateAs(&cl, true); err != nil {
		return nil, err
	}
	return newEntry(Record{Client: cl, Instance: MetadataDocumentInstance})
}

// resolverSlot and the use-tracking fields live on Registry (clients.go).
type resolverSlot = atomic.Pointer[Resolver]
