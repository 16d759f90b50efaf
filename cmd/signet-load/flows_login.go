package main

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/signet-auth/signet/totp"
	"github.com/signet-auth/signet/users"
)

const (
	wlLoginPage = "GET /oauth2/authorize without a session → login page"
	wlTOTP      = "POST /login/otp, right TOTP code → authorization code"
)

var (
	secretRE    = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7 ]+)</code>`)
	recoveryRE  = regexp.MustCompile(`id="recovery-codes"`)
	totpSecretB = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// passwordConc caps the connections of the password row: each sign-in is
// an argon2id hash of about 50 ms of CPU, and with 16 at once on a busy
// 2-core machine requests outlast serve's 2 s request deadline and are
// answered 503 (the tool's first runs), which measures the deadline, not
// the sign-in.
const passwordConc = 4

var wlPassword = fmt.Sprintf("POST the password (argon2id) → code form, %d connections", passwordConc)

// totpUser is a user with an authenticator app, in a browser of its own.
type totpUser struct {
	name    string
	secret  []byte
	last    int64 // the last step whose code was accepted
	browser *http.Client
	action  string     // the form the next request posts
	form    url.Values // its hidden fields
}

// loginScenario measures the login page, and a sign-in with a password
// and a TOTP code split in its two posts: users enrolled through the
// account page (as a person would), each signing in once per round with a
// fresh code (a step is accepted once per user, so one user signs in at
// most once per 30 s step: the windows end early when the users run out).
func loginScenario(ctx context.Context, fl *flowLab) ([]workload, error) {
	page, pw, otp := fl.target("first-party web client"), fl.target("user with an authenticator app"), fl.target("user with an authenticator app")
	fl.benches[key{wlLoginPage, page.name}] = "login `BenchmarkLoginPage`"
	fl.benches[key{wlPassword, pw.name}] = "users `BenchmarkPassword` (the hash alone)"
	fl.benches[key{wlTOTP, otp.name}] = "login `BenchmarkTOTPVerify`"
	us, err := fl.enrolUsers(ctx)
	if err != nil {
		return nil, err
	}
	fl.notes = append(fl.notes, fmt.Sprintf("TOTP: %d users, created through the admin API and enrolled on the account page (/account: password, set-up, first code) before the run; in each round every user whose next code is accepted signs in once (the users the password window did not reach post their password before the code window, not counted), with the code of a step not yet used, so the code window ends when they run out.", len(us)))
	var mu sync.Mutex
	var ready, coded []*totpUser // the password window's users; the code window's
	return []workload{
		{name: wlLoginPage, targets: []*target{page}, op: func(t *target) func(ctx context.Context, w int) error {
			return func(ctx context.Context, w int) error {
				a, err := want200(do(ctx, t.c, http.MethodGet, t.dep.authorizeURL(t.base(w), "openid"), nil, "", ""))
				if err == nil && !bytes.Contains(a.body, []byte(`name="password"`)) {
					err = fmt.Errorf("no password field in the login page: %.300s", a.body)
				}
				return err
			}
		}},
		{name: wlPassword, targets: []*target{pw}, conc: passwordConc,
			// Each user with a code left opens the login page in its own
			// browser (not counted).
			prepare: func(ctx context.Context, t *target, _ int) error {
				mu.Lock()
				defer mu.Unlock()
				ready, coded = nil, nil
				now := totp.Step(time.Now())
				for _, u := range us {
					if u.last > now {
						continue // its next code is not accepted yet
					}
					jar, _ := cookiejar.New(nil)
					u.browser = &http.Client{Transport: t.c.Transport, Jar: jar, Timeout: t.c.Timeout, CheckRedirect: t.c.CheckRedirect}
					a, err := want200(do(ctx, u.browser, http.MethodGet, t.dep.authorizeURL(t.base(0), "openid"), nil, "", ""))
					if err != nil {
						return err
					}
					if u.action, u.form, err = formOf(a); err != nil {
						return err
					}
					ready = append(ready, u)
				}
				return nil
			},
			op: func(t *target) func(ctx context.Context, w int) error {
				return func(ctx context.Context, w int) error {
					mu.Lock()
					if len(ready) == 0 {
						mu.Unlock()
						return errNoWork
					}
					u := ready[len(ready)-1]
					ready = ready[:len(ready)-1]
					mu.Unlock()
					if err := u.password(ctx, t.base(0)); err != nil {
						return err
					}
					mu.Lock()
					coded = append(coded, u)
					mu.Unlock()
					return nil
				}
			}},
		{name: wlTOTP, targets: []*target{otp},
			// The users the password window left post their password now
			// (not counted), so that every user with a code left verifies.
			prepare: func(ctx context.Context, t *target, _ int) error {
				mu.Lock()
				left := ready
				ready = nil
				mu.Unlock()
				errs := make(chan error, len(left))
				sem := make(chan struct{}, passwordConc)
				var wg sync.WaitGroup
				for _, u := range left {
					wg.Add(1)
					go func() {
						defer wg.Done()
						sem <- struct{}{}
						defer func() { <-sem }()
						if err := u.password(ctx, t.base(0)); err != nil {
							errs <- err
							return
						}
						mu.Lock()
						coded = append(coded, u)
						mu.Unlock()
					}()
				}
				wg.Wait()
				close(errs)
				return <-errs
			},
			op: func(t *target) func(ctx context.Context, w int) error {
				return func(ctx context.Context, w int) error {
					mu.Lock()
					if len(coded) == 0 {
						mu.Unlock()
						return errNoWork
					}
					u := coded[len(coded)-1]
					coded = coded[:len(coded)-1]
					mu.Unlock()
					step := max(u.last+1, totp.Step(time.Now())-1)
					u.form.Set("code", totp.Code(u.secret, step))
					a, err := do(ctx, u.browser, http.MethodPost, t.base(0)+u.action, u.form, "", "")
					if err != nil {
						return err
					}
					if _, err := codeOf(a); err != nil {
						return err
					}
					u.last = step
					return nil
				}
			}},
	}, nil
}

// password posts u's password on its login page and keeps the code form.
func (u *totpUser) password(ctx context.Context, base string) error {
	u.form.Set("username", u.name)
	u.form.Set("password", userPass)
	a, err := want200(do(ctx, u.browser, http.MethodPost, base+u.action, u.form, "", ""))
	if err != nil {
		return err
	}
	if u.action, u.form, err = formOf(a); err != nil {
		return err
	}
	if !strings.Contains(u.action, "/login/otp") {
		return fmt.Errorf("the password led to %s, not the code form", u.action)
	}
	return nil
}

// enrolUsers creates fl.users users through the admin API (with one
// argon2id hash of userPass made here, so creation costs no hashing in
// the server) and sets up an authenticator app for each on the account
// page, four at a time.
func (fl *flowLab) enrolUsers(ctx context.Context) ([]*totpUser, error) {
	d := fl.d
	a, err := want200(do(ctx, fl.c, http.MethodPost, d.urls[0]+"/oauth2/token", ccForm, adminClient, d.secrets[adminClient]))
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	admin := a.str("access_token")
	hash := users.HashPassword(userPass, users.PasswordParams{})
	us := make([]*totpUser, fl.users)
	errs := make(chan error, fl.users)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range us {
		us[i] = &totpUser{name: fmt.Sprintf("totp-%04d", i)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			body, _ := json.Marshal(map[string]string{"username": us[i].name, "password_hash": hash})
			a, err := postJSON(ctx, fl.c, d.urls[0]+"/admin/users", body, admin)
			if err == nil && a.status != http.StatusCreated {
				err = fmt.Errorf("status %d: %.200s", a.status, a.body)
			}
			if err == nil {
				err = us[i].enrol(ctx, fl.c, d.urls[0])
			}
			if err != nil {
				errs <- fmt.Errorf("user %s: %w", us[i].name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return us, <-errs
}

// enrol signs u in on the account page and turns an authenticator app on
// with the first code, as a person does.
func (u *totpUser) enrol(ctx context.Context, c *http.Client, base string) error {
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Transport: c.Transport, Jar: jar, Timeout: c.Timeout, CheckRedirect: c.CheckRedirect}
	// The account page's sign-in, then the page itself, then set-up.
	a, err := want200(do(ctx, b, http.MethodGet, base+"/account", nil, "", ""))
	if err != nil {
		return err
	}
	action, f, err := formOf(a)
	if err != nil {
		return err
	}
	f.Set("username", u.name)
	f.Set("password", userPass)
	if a, err = do(ctx, b, http.MethodPost, base+action, f, "", ""); err != nil || a.status != http.StatusSeeOther {
		return fmt.Errorf("account sign-in: status %d, %v: %.300s", a.status, err, a.body)
	}
	for _, step := range []string{"account page", "set-up"} {
		method := http.MethodGet
		target := base + "/account"
		if step == "set-up" {
			method, target = http.MethodPost, base+action
		} else {
			f = nil
		}
		if a, err = want200(do(ctx, b, method, target, f, "", "")); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		if action, f, err = formOf(a); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
	}
	m := secretRE.FindSubmatch(a.body)
	if m == nil {
		return fmt.Errorf("no key on the set-up page: %.300s", a.body)
	}
	if u.secret, err = totpSecretB.DecodeString(strings.ReplaceAll(string(m[1]), " ", "")); err != nil {
		return fmt.Errorf("the key on the set-up page: %w", err)
	}
	u.last = totp.Step(time.Now())
	f.Set("code", totp.Code(u.secret, u.last))
	if a, err = want200(do(ctx, b, http.MethodPost, base+action, f, "", "")); err != nil || !recoveryRE.Match(a.body) {
		return fmt.Errorf("turning the app on: %v: %.300s", err, a.body)
	}
	return nil
}
