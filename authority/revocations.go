package authority

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/storage"
)

// DefaultFeedMaxAge is the Cache-Control max-age of /oauth2/revocations:
// how stale a verifier's denylist may be.
const DefaultFeedMaxAge = 30 * time.Second

// revocationFeed is the body of GET /oauth2/revocations; jwks.RevocationFeed
// is its definition on the verifier side.
//
// The feed is public (verifiers poll it without credentials), so it names
// no subject: a cutoff is listed under FeedSubjectHash(key, sub), which a
// verifier given the key computes from a token's sub and compares. Without
// the key the feed says how many subjects were logged out recently, not
// who. jtis are random and say nothing about anyone.
type revocationFeed struct {
	RevokedJTIs        map[string]int64 `json:"revoked_jtis"`
	SubjectCutoffsHMAC map[string]int64 `json:"subject_cutoffs_hmac"`
}

// FeedSubjectHash is how the revocation feed names a subject:
// base64url(HMAC-SHA256(key, sub)), without padding.
func FeedSubjectHash(key []byte, sub string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sub))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// feedCache keeps the encoded feed until the denylist or a cutoff changes
// (locally, or on another replica through store.Watch) or an entry in it
// becomes droppable.
type feedCache struct {
	stale atomic.Bool
	mu    sync.Mutex
	body  []byte
	etag  string
	until int64 // unix seconds when the first entry may be dropped
}

func (f *feedCache) invalidate() { f.stale.Store(true) }

// watch invalidates the cache on every committed change of the feed's
// buckets until ctx ends or the store closes. It subscribes (synchronously)
// before marking the cache stale, so no change falls between the two.
func (f *feedCache) watch(ctx context.Context, st storage.Store) {
	for _, b := range []string{denylistBucket, cutoffsBucket} {
		ch := st.Watch(ctx, b)
		go func() {
			for range ch {
				f.stale.Store(true)
			}
		}()
	}
	f.stale.Store(true)
}

// feedDrop gives the time after which an entry can no longer matter.
func (s *Server) jtiDrop(exp int64) int64 { return exp + int64(s.cfg.Leeway/time.Second) }
func (s *Server) cutoffDrop(cutoff int64) int64 {
	return cutoff + int64((s.cfg.MaxTokenTTL+s.cfg.Leeway)/time.Second)
}

func (s *Server) feedDoc(ctx context.Context) ([]byte, string, error) {
	f := &s.feed
	now := s.cfg.Now().Unix()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.body != nil && !f.stale.Load() && now < f.until {
		return f.body, f.etag, nil
	}
	f.stale.Store(false) // before reading: a change during the read marks it stale again
	doc := revocationFeed{RevokedJTIs: map[string]int64{}, SubjectCutoffsHMAC: map[string]int64{}}
	until := int64(math.MaxInt64)
	err := s.cfg.Store.View(ctx, func(tx storage.Tx) error {
		if err := tx.Scan(denylistBucket, "", func(k string, v []byte) error {
			exp, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("denylist %q: %w", k, err)
			}
			if d := s.jtiDrop(exp); d > now {
				doc.RevokedJTIs[k] = exp
				until = min(until, d)
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Scan(cutoffsBucket, "", func(k string, v []byte) error {
			c, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("cutoff %q: %w", k, err)
			}
			if d := s.cutoffDrop(c); d > now && len(s.cfg.FeedSubjectKey) > 0 {
				doc.SubjectCutoffsHMAC[FeedSubjectHash(s.cfg.FeedSubjectKey, k)] = c
				until = min(until, d)
			}
			return nil
		})
	})
	if err != nil {
		f.stale.Store(true)
		return nil, "", fmt.Errorf("revocation feed: %w", err)
	}
	body, err := json.Marshal(doc) // map keys sorted: equal lists, equal bytes
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(body)
	f.body, f.etag, f.until = body, `"`+base64.RawURLEncoding.EncodeToString(sum[:18])+`"`, until
	return f.body, f.etag, nil
}

// revocations is GET /oauth2/revocations: the denylist feed verifiers poll
// (jwks.RevocationFeed), with a strong ETag and a short max-age.
func (s *Server) revocations(c echo.Context) error {
	body, etag, err := s.feedDoc(c.Request().Context())
	if err != nil {
		return ServerError(err)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "public, max-age="+strconv.Itoa(int(s.cfg.FeedMaxAge/time.Second)))
	h.Set("ETag", etag)
	metadataCORS.Answer(c)
	if etagMatch(c.Request().Header.Get("If-None-Match"), etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// etagMatch is If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}
