package registration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
)

// Resolve builds the client whose client_id is the metadata document URL
// id (clients.Resolver). The document is fetched by the outbound fetcher
// (https only, no redirects, no private or metadata addresses unless
// allowed, size and time limits) and cached by its HTTP headers within
// the fetcher's bounds; the prepared client is what the cache keeps, so a
// warm lookup neither fetches nor parses. Every failure wraps
// storage.ErrNotFound: to the endpoints an unusable document is an
// unknown client.
func (s *Service) Resolve(ctx context.Context, id string) (*clients.Entry, error) {
	if err := s.hostAllowed(id); err != nil {
		return nil, fmt.Errorf("client metadata document %s: %w: %w", id, storage.ErrNotFound, err)
	}
	e, err := outbound.Get(ctx, s.cfg.Fetcher, id, func(b []byte) (*clients.Entry, error) { return s.decodeDocument(id, b) })
	if err != nil {
		return nil, fmt.Errorf("client metadata document: %w: %w", storage.ErrNotFound, err)
	}
	return e, nil
}

var errHost = errors.New("host not allowed by registration policy")

// hostAllowed applies the policy's allow and deny lists of hosts.
func (s *Service) hostAllowed(id string) error {
	u, err := url.Parse(id)
	if err != nil {
		return err
	}
	host := strings.ToLower(u.Hostname())
	p := &s.cfg.Policy
	for _, h := range p.DenyHosts {
		if hostMatch(h, host) {
			return errHost
		}
	}
	if len(p.AllowHosts) == 0 {
		return nil
	}
	for _, h := range p.AllowHosts {
		if hostMatch(h, host) {
			return nil
		}
	}
	return errHost
}

// hostMatch: "*.example.com" matches every subdomain of example.com (not
// example.com itself); anything else matches exactly, case aside.
func hostMatch(pattern, host string) bool {
	pattern = strings.ToLower(pattern)
	if rest, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, rest) && len(host) > len(rest)
	}
	return host == pattern
}

// decodeDocument checks a fetched document and prepares its client.
func (s *Service) decodeDocument(id string, b []byte) (*clients.Entry, error) {
	var md clientMetadata
	if err := json.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("not a JSON client metadata document: %w", err)
	}
	if md.ClientID != id {
		// A document may only describe the client at its own URL, or
		// anyone hosting a document could speak for another client.
		return nil, fmt.Errorf("its client_id %s is not its URL", clients.QuoteValue(md.ClientID))
	}
	cl, e := s.toClient(md, true)
	if e != nil {
		return nil, fmt.Errorf("%s: %s", e.code, e.desc)
	}
	cl.ID = id
	return s.cfg.Clients.PrepareExternal(cl)
}
