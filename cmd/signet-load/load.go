package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// hist is a latency histogram with about 3% resolution and a fixed size,
// so a run of any length needs the same memory: bucket = the position of
// the top bit and the next five bits of the duration in nanoseconds.
type hist struct {
	mu sync.Mutex
	b  [64 * 32]uint64
	n  uint64
}

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 1))
	e := bits.Len64(v) - 1
	if e < 5 {
		return int(v)
	}
	return e*32 + int((v>>(e-5))&31)
}

func bucketValue(i int) time.Duration {
	e, m := i/32, uint64(i%32)
	if e < 5 {
		return time.Duration(i)
	}
	return time.Duration((32 + m) << (e - 5))
}

func (h *hist) add(d time.Duration) {
	h.mu.Lock()
	h.b[bucketOf(d)]++
	h.n++
	h.mu.Unlock()
}

func (h *hist) merge(o *hist) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range o.b {
		h.b[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q <= 1), 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	var seen uint64
	for i, c := range h.b {
		seen += c
		if seen >= max(rank, 1) {
			return bucketValue(i)
		}
	}
	return 0
}

// result is one measured window of a closed-loop run.
type result struct {
	n, errs  int64
	firstErr error
	elapsed  time.Duration
	lat      hist
	cpu      time.Duration // server processes
	etcdCPU  time.Duration
}

// closedLoop runs conc workers, each sending its next request as soon as
// the last is answered, until d has passed or op reports it has no more
// work (errNoWork). Every answer op judges wrong is an error. A request
// started inside the window is answered, never cut: a refresh cut short
// after its commit would leave a used token to the next window.
func closedLoop(ctx context.Context, conc int, d time.Duration, op func(ctx context.Context, worker int) error) *result {
	r := &result{}
	var n, errs atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	hs := make([]hist, conc)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				err := op(ctx, w)
				if err == errNoWork {
					return
				}
				hs[w].add(time.Since(t0))
				n.Add(1)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.n, r.errs = n.Load(), errs.Load()
	if p := firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	for i := range hs {
		r.lat.merge(&hs[i])
	}
	return r
}

var errNoWork = fmt.Errorf("no more work")

// httpClient keeps conc connections per host alive.
func httpClient(conc int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.DisableCompression = 4*conc+16, conc+4, true
	return &http.Client{Transport: t, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// answer is a read HTTP response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json() map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal(a.body, &m)
	return m
}

func (a answer) str(k string) string { s, _ := a.json()[k].(string); return s }

// do sends a request and reads the whole answer.
func do(ctx context.Context, c *http.Client, method, u string, form url.Values, user, pass string) (answer, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return answer{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return roundTrip(c, req)
}

// roundTrip sends req and reads the whole answer.
func roundTrip(c *http.Client, req *http.Request) (answer, error) {
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// want200 turns anything but a 200 into an error naming the answer.
func want200(a answer, err error) (answer, error) {
	if err != nil {
		return a, err
	}
	if a.status != http.StatusOK {
		b := a.body
		if len(b) > 200 {
			b = b[:200]
		}
		return a, fmt.Errorf("status %d: %s", a.status, b)
	}
	return a, nil
}
