package auth

import (
	"context"
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
)

// BenchmarkHashPassword is the cost of one sign-in with the default
// argon2id parameters (what a password guesser pays per guess).
func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple", DefaultPasswordParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateToken is the per-request cost of a bearer token on
// SQLite (hash, one indexed read; last-use writes at most once a minute).
func BenchmarkAuthenticateToken(b *testing.B) {
	db := dbtest.SQLite(b)
	ctx := context.Background()
	s := NewService(db, nil, nil, Options{Password: PasswordParams{Memory: 64, Time: 1, Threads: 1}})
	u, err := s.CreateUser(ctx, SystemPrincipal, NewUser{Email: "b@example.org", Role: "viewer"})
	if err != nil {
		b.Fatal(err)
	}
	secret, _, err := s.CreateToken(ctx, SystemPrincipal, u.ID, "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.AuthenticateToken(ctx, secret); err != nil {
			b.Fatal(err)
		}
	}
}
