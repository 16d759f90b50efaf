package users_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/signet-auth/signet/users"
)

// cheap are argon2id parameters fast enough for tests.
var cheap = users.PasswordParams{Memory: 64, Time: 1, Threads: 1}

func TestVerifyPassword(t *testing.T) {
	hash := users.HashPassword("correct horse", cheap)
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash = %s, want an argon2id PHC string with the given parameters", hash)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	stronger := users.PasswordParams{Memory: 128, Time: 1, Threads: 1}
	for _, tc := range []struct {
		name               string
		hash, password     string
		current            users.PasswordParams
		wantOK, wantRehash bool
	}{
		{"right", hash, "correct horse", cheap, true, false},
		{"wrong", hash, "correct horsE", cheap, false, false},
		{"right, older parameters", hash, "correct horse", stronger, true, true},
		{"bcrypt right", string(bc), "correct horse", cheap, true, true},
		{"bcrypt wrong", string(bc), "wrong", cheap, false, true},
		{"unusable hash", "$argon2id$v=19$m=64,t=1,p=1$bad$bad", "correct horse", cheap, false, false},
		{"over-long password", hash, strings.Repeat("x", 1025), cheap, false, false},
	} {
		ok, rehash := users.VerifyPassword(tc.hash, tc.password, tc.current)
		if ok != tc.wantOK || rehash != tc.wantRehash {
			t.Errorf("%s: VerifyPassword = %v, %v; want %v, %v", tc.name, ok, rehash, tc.wantOK, tc.wantRehash)
		}
	}
}

// TestPasswordParams_Validate: a stored hash cannot ask for unbounded cost.
func TestPasswordParams_Validate(t *testing.T) {
	var p users.PasswordParams
	p.ApplyDefaults()
	if p != (users.PasswordParams{Memory: users.DefaultPasswordMemory, Time: users.DefaultPasswordTime, Threads: users.DefaultPasswordThreads}) {
		t.Errorf("defaults = %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, bad := range []users.PasswordParams{{Memory: 2 << 20, Time: 1, Threads: 1}, {Memory: 64, Time: 17, Threads: 1}, {Memory: 64, Time: 1, Threads: 17}, {Memory: 7, Time: 1, Threads: 1}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	huge := "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5"
	if ok, _ := users.VerifyPassword(huge, "x", cheap); ok {
		t.Error("a hash asking for 4 GiB verified")
	}
}

// BenchmarkPassword is the cost of one argon2id hash with the default
// parameters (m=19456 KiB, t=2, p=1): what every password login, and every
// login with an unknown username, costs.
func BenchmarkPassword(b *testing.B) {
	p := users.PasswordParams{Memory: users.DefaultPasswordMemory, Time: users.DefaultPasswordTime, Threads: users.DefaultPasswordThreads}
	b.Run("argon2id-m19456-t2-p1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = users.HashPassword("correct horse battery staple", p)
		}
	})
}
