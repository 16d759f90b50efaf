package signettest

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser is a cookie-keeping HTTP client that follows no redirect, so a
// test sees every hop. Its cookie jar spans hosts, as a browser's does.
type Browser struct {
	T      testing.TB
	Client *http.Client
	// Base is the origin Submit posts form actions and Authorize sends
	// requests to (a stack's issuer).
	Base string
}

// NewBrowser is a browser for the Signet at base; transport nil is the
// default transport.
func NewBrowser(t testing.TB, base string, transport http.RoundTripper) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{T: t, Base: base, Client: &http.Client{Jar: jar, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Page is one answer the browser got.
type Page struct {
	Status int
	Header http.Header
	Body   string
	// Location is where the server sends the browser next: a Location
	// header (resolved against the request) or a continue page's link;
	// nil when neither.
	Location *url.URL
}

var (
	continueRE = regexp.MustCompile(`<a class="button" href="([^"]+)">Continue to the application</a>`)
	actionRE   = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	formRE     = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)"[^>]*>(.*?)</form>`)
	hiddenRE   = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
)

// Do sends req and reads the answer.
func (b *Browser) Do(req *http.Request) Page {
	b.T.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		b.T.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := Page{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.Location, _ = req.URL.Parse(loc)
	} else {
		p.Location = ContinueLink(p.Body)
	}
	return p
}

// ContinueLink is the link of a page that leaves Signet for the client
// ("Continue to the application"); nil when body has none.
func ContinueLink(body string) *url.URL {
	m := continueRE.FindStringSubmatch(body)
	if m == nil {
		return nil
	}
	u, _ := url.Parse(html.UnescapeString(m[1]))
	return u
}

// Get fetches u.
func (b *Browser) Get(u string) Page {
	b.T.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.Do(req)
}

// Post posts form to u.
func (b *Browser) Post(u string, form url.Values) Page {
	b.T.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

// Authorize starts an authorization request at Base.
func (b *Browser) Authorize(q url.Values) Page {
	b.T.Helper()
	return b.Get(b.Base + "/oauth2/authorize?" + q.Encode())
}

// Follow goes where p sends the browser.
func (b *Browser) Follow(p Page) Page {
	b.T.Helper()
	if p.Location == nil {
		b.T.Fatalf("page sends nowhere (status %d):\n%s", p.Status, p.Body)
	}
	return b.Get(p.Location.String())
}

// FormOf returns the action of the page's first form and the hidden
// fields of the whole page.
func FormOf(t testing.TB, p Page) (string, url.Values) {
	t.Helper()
	m := actionRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no form on the page (status %d):\n%s", p.Status, p.Body)
	}
	v := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	return html.UnescapeString(m[1]), v
}

// Submit posts the page's form (FormOf) to Base with extra fields.
func (b *Browser) Submit(p Page, extra url.Values) Page {
	b.T.Helper()
	action, v := FormOf(b.T, p)
	for k, vals := range extra {
		v[k] = vals
	}
	return b.Post(b.Base+action, v)
}

// SubmitForm posts the form of p whose body contains marker, with its
// own hidden fields and extra, to base (pages of several Signets).
func (b *Browser) SubmitForm(base string, p Page, marker string, extra url.Values) Page {
	b.T.Helper()
	for _, m := range formRE.FindAllStringSubmatch(p.Body, -1) {
		if !strings.Contains(m[2], marker) {
			continue
		}
		v := url.Values{}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			v.Set(h[1], html.UnescapeString(h[2]))
		}
		for k, vals := range extra {
			v[k] = vals
		}
		return b.Post(base+html.UnescapeString(m[1]), v)
	}
	b.T.Fatalf("no form with %q on the page (status %d):\n%s", marker, p.Status, p.Body)
	return Page{}
}
