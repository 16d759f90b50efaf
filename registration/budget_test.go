package registration_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/outbound"
)

func docTool() map[string]any {
	return map[string]any{"client_name": "Doc Tool", "redirect_uris": []string{"http://127.0.0.1:40001/cb"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none", "scope": "mcp:tools"}
}

// floodFetches counts the fetches the document server saw under /flood/.
func (e *env) floodFetches() int {
	e.docMu.Lock()
	defer e.docMu.Unlock()
	n := 0
	for p, c := range e.fetches {
		if strings.HasPrefix(p, "/flood/") {
			n += c
		}
	}
	return n
}

// authorizeFrom sends an authorization request for clientID from the
// source address ip (X-Forwarded-For through the loopback proxy; "" for
// none).
func (b *browser) authorizeFrom(clientID, ip string) page {
	_, challenge := signettest.PKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"http://127.0.0.1:40001/cb"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	req, _ := http.NewRequest(http.MethodGet, b.Base+"/oauth2/authorize?"+q.Encode(), nil)
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	return b.Do(req)
}

// TestAttackMetadataDocumentFlood: a flood of new metadata document URLs
// (valid documents, the worst case) at the authorization and token
// endpoints makes Signet fetch no more than the global budget; the rest
// are unknown clients; a warm client keeps working throughout and costs
// no fetch; the refusal is logged once; the budget refills with its
// window.
func TestAttackMetadataDocumentFlood(t *testing.T) {
	p := defaultPolicy()
	p.Fetches, p.FetchesPerIP, p.FetchWindow = 6, -1, time.Minute
	logs := &signettest.LogBuffer{}
	e := newEnv(t, envOptions{policy: p, logger: slog.New(slog.NewTextHandler(logs, nil))})
	warm := e.serveJSON("/warm.json", docTool())
	if tr := e.codeFlow(e.browser(), warm, "http://127.0.0.1:40001/cb", "mcp:tools", nil); tr.status != http.StatusOK {
		t.Fatalf("warm client = %d %s", tr.status, tr.raw)
	}

	const flood = 40
	ids := make([]string, flood)
	for i := range ids {
		ids[i] = e.serveJSON(fmt.Sprintf("/flood/%d.json", i), docTool())
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := e.browser()
			for i := w; i < flood; i += 4 {
				if i%2 == 0 {
					b.authorizeFrom(ids[i], "")
				} else {
					e.token(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {strings.Repeat("v", 43)}, "client_id": {ids[i]}}, "", "")
				}
			}
		}()
	}
	// Meanwhile the warm client logs in and redeems its codes.
	b := e.browser()
	for range 3 {
		if tr := e.codeFlow(b, warm, "http://127.0.0.1:40001/cb", "mcp:tools", nil); tr.status != http.StatusOK {
			t.Fatalf("warm client during the flood = %d %s", tr.status, tr.raw)
		}
	}
	wg.Wait()
	if n := e.floodFetches(); n != 5 {
		t.Fatalf("the flood made %d fetches, want 5 (a budget of 6 less the warm client's)", n)
	}
	if n := e.fetchCount("/warm.json"); n != 1 {
		t.Fatalf("the warm document was fetched %d times, want 1", n)
	}
	// Over budget, a new URL is an unknown client everywhere, and fetched nowhere.
	late := e.serveJSON("/flood/late.json", docTool())
	assertUnknown(t, e, late)
	if n := e.fetchCount("/flood/late.json"); n != 0 {
		t.Fatalf("over budget, the document was fetched %d times", n)
	}
	if n := strings.Count(logs.String(), "condition=\"client metadata document fetches\""); n != 1 {
		t.Fatalf("the refusal was logged %d times, want once per episode:\n%s", n, logs)
	}
	// A new window: the budget is back.
	e.clock.Add(time.Minute)
	if tr := e.codeFlow(e.browser(), late, "http://127.0.0.1:40001/cb", "mcp:tools", nil); tr.status != http.StatusOK {
		t.Fatalf("after the window = %d %s", tr.status, tr.raw)
	}
	if n := e.fetchCount("/flood/late.json"); n != 1 {
		t.Fatalf("after the window the document was fetched %d times, want 1", n)
	}
}

// TestAttackMetadataDocumentFloodPerAddress: one address naming new URLs
// is held to its own budget, and neither spends the global budget past it
// nor stops another address's new client.
func TestAttackMetadataDocumentFloodPerAddress(t *testing.T) {
	p := defaultPolicy()
	p.Fetches, p.FetchesPerIP, p.FetchWindow = 5, 3, time.Minute
	e := newEnv(t, envOptions{policy: p, forwarded: true})
	b := e.browser()
	for i := range 10 {
		id := e.serveJSON(fmt.Sprintf("/flood/%d.json", i), docTool())
		pg := b.authorizeFrom(id, "203.0.113.7")
		if known := pg.Status == http.StatusOK; known != (i < 3) {
			t.Fatalf("request %d from the flooding address = %d:\n%s", i, pg.Status, pg.Body)
		}
	}
	if n := e.floodFetches(); n != 3 {
		t.Fatalf("one address made Signet fetch %d documents, want 3", n)
	}
	// The token endpoint, same address: unknown client, no fetch.
	id := e.serveJSON("/flood/token.json", docTool())
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
		"code": {"x"}, "code_verifier": {strings.Repeat("v", 43)}, "client_id": {id}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || e.fetchCount("/flood/token.json") != 0 {
		t.Fatalf("token endpoint over the address's budget = %d, %d fetches", resp.StatusCode, e.fetchCount("/flood/token.json"))
	}
	// Another address still gets its client (the global budget has 2 left).
	other := e.serveJSON("/other.json", docTool())
	if pg := b.authorizeFrom(other, "198.51.100.9"); pg.Status != http.StatusOK || !strings.Contains(pg.Body, `name="password"`) {
		t.Fatalf("another address = %d:\n%s", pg.Status, pg.Body)
	}
}

// TestAttackMetadataDocumentFailuresKeepWarm: a flood of URLs that fail
// (within the budget) does not push a warm document out of a small cache:
// failures are evicted first.
func TestAttackMetadataDocumentFailuresKeepWarm(t *testing.T) {
	p := defaultPolicy()
	p.Fetches, p.FetchesPerIP = -1, -1
	e := newEnv(t, envOptions{policy: p, fetcher: func(o *outbound.Options) { o.MaxEntries = 3 }})
	warm := e.serveJSON("/warm.json", docTool())
	b := e.browser()
	if tr := e.codeFlow(b, warm, "http://127.0.0.1:40001/cb", "mcp:tools", nil); tr.status != http.StatusOK {
		t.Fatalf("warm client = %d %s", tr.status, tr.raw)
	}
	for i := range 30 {
		if _, err := e.srv.Clients().Lookup(context.Background(), fmt.Sprintf("%s/flood/missing-%d.json", e.docs.URL, i)); err == nil {
			t.Fatal("a missing document resolved")
		}
	}
	if n := e.floodFetches(); n != 30 {
		t.Fatalf("%d failing fetches, want 30", n)
	}
	if tr := e.codeFlow(b, warm, "http://127.0.0.1:40001/cb", "mcp:tools", nil); tr.status != http.StatusOK {
		t.Fatalf("warm client after the flood = %d %s", tr.status, tr.raw)
	}
	if n := e.fetchCount("/warm.json"); n != 1 {
		t.Fatalf("the warm document was fetched %d times, want 1 (still cached)", n)
	}
}
