package registration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/clients"
	"github.com/signet-auth/signet/outbound"
	"github.com/signet-auth/signet/storage"
)

// errBudget is a fetch refused by the fetch budget (Policy.Fetches).
var errBudget = errors.New("over the budget of metadata document fetches; retry later")

// admitFetch spends the fetch budget for one network fetch of a document:
// the source address's first (when the request's address is known), so
// that one address cannot spend everyone's budget on refused fetches,
// then the global one. A refusal is logged once per episode.
func (s *Service) admitFetch(ctx context.Context) error {
	now := s.cfg.Now()
	if ip, _ := ctx.Value(addressKey{}).(string); ip != "" {
		if s.fetchesPerIP.Take(ip, now) > 0 {
			s.refused.Note(ctx, s.log, "client metadata document fetches per address", http.StatusTooManyRequests,
				"an address named more new metadata document URLs as client_id than dynamic_clients.metadata_documents.fetches_per_ip allows per window; they are answered as unknown clients", "", now)
			return errBudget
		}
	}
	if s.fetches.Take("", now) > 0 {
		s.refused.Note(ctx, s.log, "client metadata document fetches", http.StatusTooManyRequests,
			"more new metadata document URLs were named as client_id than dynamic_clients.metadata_documents.fetches allows per window; they are answered as unknown clients, cached documents still work", "", now)
		return errBudget
	}
	return nil
}

type addressKey struct{}

// sourceAddress puts the request's source address (echo's IPExtractor,
// which the server sets from http.trusted_proxies) in the context of the
// OAuth endpoints, where a request may name a client_id never seen before.
func sourceAddress(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if r := c.Request(); strings.HasPrefix(r.URL.Path, "/oauth2/") {
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), addressKey{}, c.RealIP())))
		}
		return next(c)
	}
}

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
	e, err := outbound.GetAdmitted(ctx, s.cfg.Fetcher, id, s.admit, func(b []byte) (*clients.Entry, error) { return s.decodeDocument(id, b) })
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
