package jwksdoc

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// KeySource supplies the keys to publish. *keys.Manager satisfies it.
type KeySource interface {
	// PublicSet returns the keys to publish and a version that changes
	// whenever the set may have changed. The set must not be modified.
	PublicSet() (jwk.Set, uint64)
}

// Handler serves the JWK Set document (RFC 7517 §5) of a KeySource.
//
// The body, its strong ETag and every header value are computed once per
// key-set version and then served from memory: a JWKS endpoint is hit by
// every verifier of every service, and answering it must cost no more than
// answering with a constant.
type Handler struct {
	src    KeySource
	maxAge time.Duration
	log    *slog.Logger
	cur    atomic.Pointer[document]
}

// document is one rendered version of the key set.
type document struct {
	version uint64
	body    []byte
	etag    string
	// Precomputed header values, assigned to the header map without
	// allocating. net/http never modifies them.
	hETag, hLength, hType, hCache, hCORS, hExpose, hNoSniff []string
}

// NewHandler publishes src with Cache-Control max-age set to maxAge. A nil
// logger discards.
func NewHandler(src KeySource, maxAge time.Duration, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{src: src, maxAge: maxAge, log: logger}
}

// Document returns the current JWK Set bytes and their ETag (quoted).
func (h *Handler) Document() ([]byte, string, error) {
	d, err := h.document()
	if err != nil {
		return nil, "", err
	}
	return d.body, d.etag, nil
}

func (h *Handler) document() (*document, error) {
	set, version := h.src.PublicSet()
	if d := h.cur.Load(); d != nil && d.version == version {
		return d, nil
	}
	d, err := h.render(set, version)
	if err != nil {
		return nil, err
	}
	h.cur.Store(d) // two requests may render the same version; both are right
	return d, nil
}

// render builds the document. It copies only the public members of each key
// and refuses anything that is not an asymmetric signing key, so that a bug
// upstream can never publish a private or symmetric key. The bytes depend
// only on the keys, not on their order in set or the order their members
// were set in (see the package doc).
func (h *Handler) render(set jwk.Set, version uint64) (*document, error) {
	type entry struct {
		kid, alg string
		json     []byte
	}
	entries := make([]entry, 0, set.Len())
	for i := range set.Len() {
		k, _ := set.Key(i)
		switch k.KeyType() {
		case jwa.RSA, jwa.EC, jwa.OKP:
		default:
			return nil, fmt.Errorf("jwksdoc: refusing to publish key %s of type %s", k.KeyID(), k.KeyType())
		}
		pub, err := k.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("jwksdoc: public key of %s: %w", k.KeyID(), err)
		}
		if pub.KeyID() == "" || pub.Algorithm().String() == "" {
			return nil, fmt.Errorf("jwksdoc: key without kid or alg")
		}
		b, err := canonicalKey(pub)
		if err != nil {
			return nil, fmt.Errorf("jwksdoc: encode %s: %w", pub.KeyID(), err)
		}
		entries = append(entries, entry{kid: pub.KeyID(), alg: pub.Algorithm().String(), json: b})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.kid, b.kid), cmp.Compare(a.alg, b.alg))
	})
	var buf bytes.Buffer
	buf.WriteString(`{"keys":[`)
	for i, e := range entries {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e.json)
	}
	buf.WriteString(`]}`)
	body := buf.Bytes()
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
	return &document{
		version:  version,
		body:     body,
		etag:     etag,
		hETag:    []string{etag},
		hLength:  []string{strconv.Itoa(len(body))},
		hType:    []string{"application/json"},
		hCache:   []string{"public, max-age=" + strconv.Itoa(int(h.maxAge/time.Second))},
		hCORS:    []string{"*"},
		hExpose:  []string{"ETag, Cache-Control"},
		hNoSniff: []string{"nosniff"},
	}, nil
}

// ServeHTTP answers GET and HEAD with the document, 304 when If-None-Match
// matches, and OPTIONS as a CORS preflight.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		hdr["Access-Control-Allow-Origin"] = []string{"*"}
		hdr["Access-Control-Allow-Methods"] = []string{"GET, HEAD, OPTIONS"}
		hdr["Access-Control-Allow-Headers"] = []string{"If-None-Match"}
		hdr["Access-Control-Max-Age"] = []string{"86400"}
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		hdr["Allow"] = []string{"GET, HEAD, OPTIONS"}
		hdr["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":"method_not_allowed","error_description":"use GET"}`))
		return
	}
	d, err := h.document()
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "render jwks", slog.String("err", err.Error()))
		hdr["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":"server_error"}`))
		return
	}
	hdr["Etag"] = d.hETag
	hdr["Cache-Control"] = d.hCache
	hdr["Access-Control-Allow-Origin"] = d.hCORS
	hdr["Access-Control-Expose-Headers"] = d.hExpose
	hdr["X-Content-Type-Options"] = d.hNoSniff
	if inm, ok := r.Header["If-None-Match"]; ok && etagMatch(inm, d.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr["Content-Type"] = d.hType
	hdr["Content-Length"] = d.hLength
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(d.body)
	}
}

// canonicalKey encodes one public JWK with its members in lexicographic
// order and no whitespace. encoding/json sorts map keys, so a round trip
// through a map of raw values fixes the order whatever jwx does; public JWK
// members are strings or arrays of strings, so nothing else can vary.
func canonicalKey(k jwk.Key) ([]byte, error) {
	b, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, err
	}
	return json.Marshal(members)
}

// etagMatch implements If-None-Match (RFC 9110 §13.1.2): "*" or any listed
// tag equal to ours. Weak comparison is what the RFC asks for here, so a
// W/ prefix is ignored.
func etagMatch(values []string, etag string) bool {
	for _, v := range values {
		if v == etag {
			return true
		}
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}
