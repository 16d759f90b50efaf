package login_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/signet-auth/signet/internal/signettest"
	"github.com/signet-auth/signet/login"
	"github.com/signet-auth/signet/sessions"
	"github.com/signet-auth/signet/totp"
)

// BenchmarkTOTPVerify is POST /login/otp with a right code: the MAC'd
// transaction, the code checked and its step spent in one commit, a new
// session (one commit) and an authorization code (one commit). Each
// iteration is a step-up of a fresh password session 30 seconds later (a
// step is accepted once), prepared with the timer stopped.
func BenchmarkTOTPVerify(b *testing.B) {
	e := newEnv(b, envOptions{factors: true})
	e.webClient("web", nil)
	ctx := context.Background()
	secret, err := e.mfa.BeginTOTP(ctx, e.alice.ID)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.mfa.ConfirmTOTP(ctx, e.alice.ID, totp.Code(secret, totp.Step(e.clock.Now()))); err != nil {
		b.Fatal(err)
	}
	q, _ := factorQuery("web", url.Values{"acr_values": {sessions.ACRMFA}})
	target := "/oauth2/authorize?" + q.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		e.clock.Add(totp.Period)
		cookie, _, err := e.sess.Start(ctx, e.alice.ID, e.clock.Now())
		if err != nil {
			b.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.AddCookie(&http.Cookie{Name: login.SessionCookie, Value: cookie})
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		_, form := signettest.FormOf(b, page{Status: w.Code, Body: w.Body.String()})
		form.Set("code", totp.Code(secret, totp.Step(e.clock.Now())))
		post := httptest.NewRequest(http.MethodPost, "/login/otp", strings.NewReader(form.Encode()))
		post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		post.AddCookie(&http.Cookie{Name: login.SessionCookie, Value: cookie})
		for _, c := range w.Result().Cookies() {
			post.AddCookie(c)
		}
		if i == 0 { // once, untimed: the right code continues to the client with a code
			w := httptest.NewRecorder()
			e.srv.ServeHTTP(w, post)
			if !strings.Contains(w.Body.String(), "Continue to the application") || !strings.Contains(w.Body.String(), "code=") {
				b.Fatalf("POST /login/otp = %d:\n%s", w.Code, w.Body.String())
			}
			b.StartTimer()
			continue
		}
		out := &discardWriter{h: http.Header{}}
		b.StartTimer()
		e.srv.ServeHTTP(out, post)
		if out.status != http.StatusFound && out.status != http.StatusOK {
			b.Fatalf("status %d", out.status)
		}
	}
}
