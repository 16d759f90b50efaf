package authority_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-auth/signet/authority"
)

// TestRefusals_LoggedOncePerEpisode (issue 17): a refusal Signet makes on
// purpose is one log line when it begins (INFO for a rate limit), not a
// line per refused request, and never an "internal error"; after a quiet
// minute the next episode is logged again.
func TestRefusals_LoggedOncePerEpisode(t *testing.T) {
	e := newEnv(t, envOptions{algs: []string{"ES256"}, rateLimit: authority.RateLimit{Window: time.Minute, PerClient: 3, PerIP: 100}})
	tokenClients(t, e)
	form := url.Values{"grant_type": {"client_credentials"}}
	episode := func() {
		t.Helper()
		for range 3 {
			e.tokenRequest(form, "svc", "wrong")
		}
		for range 5 {
			if status, _, _ := e.tokenRequest(form, "svc", "wrong"); status != http.StatusTooManyRequests {
				t.Fatalf("over the limit = %d, want 429", status)
			}
		}
	}
	count := func() int {
		n := 0
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, `"condition":"auth_rate_limit"`) {
				n++
				if !strings.Contains(line, `"level":"INFO"`) || !strings.Contains(line, `"msg":"refusing requests"`) {
					t.Errorf("refusal line %s: want INFO refusing requests", line)
				}
			}
		}
		return n
	}
	episode()
	if n := count(); n != 1 {
		t.Errorf("5 rate-limited requests logged %d refusal lines, want 1", n)
	}
	e.clock.Add(2 * time.Minute) // the window and the quiet minute pass
	episode()
	if n := count(); n != 2 {
		t.Errorf("after a quiet minute, a new episode: %d refusal lines in all, want 2", n)
	}
	if strings.Contains(e.logs.String(), `"internal error"`) {
		t.Errorf("a refusal was logged as an internal error:\n%s", e.logs)
	}
}
