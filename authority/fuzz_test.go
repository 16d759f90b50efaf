package authority_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signet-auth/signet/clients"
)

// knownErrors are the error codes the token endpoint may answer with.
var knownErrors = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "invalid_target": true,
	"temporarily_unavailable": true, "method_not_allowed": true,
}

// FuzzTokenEndpoint sends arbitrary methods, content types, Authorization
// headers, query strings and bodies to the token endpoint: never a 5xx,
// always JSON, and every 4xx names a known error. "SECRET" in the body or
// in the Basic credentials is replaced by the real secret of client "svc",
// so the fuzzer also explores requests past client authentication.
func FuzzTokenEndpoint(f *testing.F) {
	e := newEnv(f, envOptions{algs: []string{"EdDSA"}})
	secret := e.createClient(clients.Client{ID: "svc", Scopes: []string{"read", "write"}, Audiences: []string{"api1", "api2"}})
	b64 := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	const form = "application/x-www-form-urlencoded"
	f.Add("POST", "", form, b64("svc:SECRET"), []byte("grant_type=client_credentials"))
	f.Add("POST", "", form, "", []byte("grant_type=client_credentials&client_id=svc&client_secret=SECRET&scope=read+write&audience=api2"))
	f.Add("POST", "", form, "", []byte("grant_type=client_credentials&client_id=svc&client_secret=SECRET&resource=api1&resource=api2"))
	f.Add("POST", "", form+"; charset=utf-8", b64("svc:SECRET"), []byte("grant_type=client_credentials&scope=%00"))
	f.Add("POST", "x=1", form, b64("svc:SECRET"), []byte("grant_type=client_credentials"))
	f.Add("GET", "", "", "", []byte(nil))
	f.Add("POST", "", "application/json", b64("svc:SECRET"), []byte(`{"grant_type":"client_credentials"}`))
	f.Add("POST", "", "multipart/form-data; boundary=x", "", []byte("--x\r\n\r\n--x--"))
	f.Add("POST", "", form, "Basic ====", []byte("grant_type=client_credentials"))
	f.Add("POST", "", form, b64("%zz:%"), []byte("grant_type=client_credentials"))
	f.Add("POST", "", form, "Bearer x.y.z", []byte("grant_type=refresh_token&refresh_token=x"))
	f.Add("POST", "", form, b64("svc:SECRET"), []byte("grant_type=client_credentials&grant_type=password"))
	f.Add("POST", "", form, b64("svc:SECRET"), []byte("grant_type=client_credentials&scope=read;write&x"))
	f.Add("DELETE", "", form, b64("svc:SECRET"), []byte("grant_type=client_credentials"))

	f.Fuzz(func(t *testing.T, method, query, ctype, auth string, body []byte) {
		auth = strings.ReplaceAll(auth, "SECRET", secret)
		if rest, ok := strings.CutPrefix(auth, "Basic "); ok {
			if dec, err := base64.StdEncoding.DecodeString(rest); err == nil {
				auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(string(dec), "SECRET", secret)))
			}
		}
		body = []byte(strings.ReplaceAll(string(body), "SECRET", secret))
		req, err := http.NewRequest(method, "http://signet.test/oauth2/token", strings.NewReader(string(body)))
		if err != nil {
			return // not an HTTP request a server could receive
		}
		req.URL.RawQuery = query
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header["Content-Type"] = []string{ctype}
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q %q %q %q %q: %s", rec.Code, method, query, ctype, auth, body, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q, want application/json (status %d)", ct, rec.Code)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("body is not JSON: %q", rec.Body)
		}
		if rec.Code >= 400 {
			if code, _ := out["error"].(string); !knownErrors[code] {
				t.Fatalf("status %d with error %q: not a known code", rec.Code, code)
			}
		} else if out["access_token"] == nil {
			t.Fatalf("status %d without access_token: %s", rec.Code, rec.Body)
		}
	})
}
