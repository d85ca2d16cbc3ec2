package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

var cheap = PasswordParams{Memory: 64, Time: 1, Threads: 1}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newService(t *testing.T, db *sqldb.DB) (*Service, *clock) {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return NewService(db, audit.New(db, nil), nil, Options{Password: cheap, Now: c.now,
		SessionIdle: time.Hour, SessionMax: 3 * time.Hour, ThrottleMax: 3, ThrottleWindow: 10 * time.Minute}), c
}

func TestPolicy(t *testing.T) {
	anon := Principal{}
	tests := []struct {
		action Action
		want   map[Role]bool
	}{
		{ReadData, map[Role]bool{Viewer: true, Contributor: true, Admin: true}},
		{Self, map[Role]bool{Viewer: true, Contributor: true, Admin: true}},
		{WriteData, map[Role]bool{Contributor: true, Admin: true}},
		{RunExports, map[Role]bool{Contributor: true, Admin: true}},
		{UseConnection, map[Role]bool{Contributor: true, Admin: true}},
		{ManageConnections, map[Role]bool{Admin: true}},
		{ManageUsers, map[Role]bool{Admin: true}},
		{ReadAudit, map[Role]bool{Admin: true}},
		{Action("unknown"), map[Role]bool{}},
	}
	for _, tt := range tests {
		if err := Require(anon, tt.action); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("anonymous %s: %v, want ErrUnauthenticated", tt.action, err)
		}
		for _, r := range Roles {
			p := Principal{UserID: 1, Role: r}
			err := Require(p, tt.action)
			if got := err == nil; got != tt.want[r] {
				t.Errorf("%s %s: allowed %v, want %v", r, tt.action, got, tt.want[r])
			}
			if err != nil && !errors.Is(err, ErrForbidden) {
				t.Errorf("%s %s: %v, want ErrForbidden", r, tt.action, err)
			}
		}
	}
	if (Principal{UserID: 1, Role: "root"}).Authenticated() {
		t.Error("unknown role authenticated")
	}
	useTests := []struct {
		role   Role
		shared bool
		want   bool
	}{
		{Admin, false, true}, {Admin, true, true},
		{Contributor, false, false}, {Contributor, true, true},
		{Viewer, true, false}, {Viewer, false, false},
	}
	for _, tt := range useTests {
		if got := CanUseConnection(Principal{UserID: 1, Role: tt.role}, tt.shared); got != tt.want {
			t.Errorf("CanUseConnection(%s, shared=%v) = %v", tt.role, tt.shared, got)
		}
	}
}

func TestPassword(t *testing.T) {
	h, err := HashPassword("correct horse battery", cheap)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("correct horse battery", cheap)
	if h == h2 || !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hashes %q %q: want salted argon2id PHC strings", h, h2)
	}
	tests := []struct {
		pw, hash string
		ok       bool
		err      bool
	}{
		{"correct horse battery", h, true, false},
		{"correct horse batterY", h, false, false},
		{"", h, false, false},
		{"x", "$2a$10$bcrypt", false, true},
		{"x", "$argon2id$v=19$m=64,t=0,p=1$AA$AA", false, true},
		{"x", "garbage", false, true},
	}
	for _, tt := range tests {
		ok, err := VerifyPassword(tt.pw, tt.hash)
		if ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("VerifyPassword(%q, %q) = %v, %v", tt.pw, tt.hash, ok, err)
		}
	}
	for pw, ok := range map[string]bool{"short": false, "tenletters": true, strings.Repeat("x", 257): false} {
		if (CheckPassword(pw) == nil) != ok {
			t.Errorf("CheckPassword(%d chars) ok=%v", len(pw), !ok)
		}
	}
}

func TestThrottle(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	th := NewThrottle(2, time.Minute)
	th.now = c.now
	steps := []struct {
		fail    bool
		advance time.Duration
		allowed bool
	}{
		{true, 0, true},                  // 1 failure
		{true, 10 * time.Second, true},   // 2 failures: checked before the failure
		{false, 0, false},                // now blocked
		{false, 49 * time.Second, false}, // first failure still inside the window
		{false, 1 * time.Second, true},   // first failure left the window
	}
	for i, s := range steps {
		c.advance(s.advance)
		ok, wait := th.Allow("k")
		if ok != s.allowed || (!ok && wait <= 0) {
			t.Fatalf("step %d: Allow = %v (wait %v), want %v", i, ok, wait, s.allowed)
		}
		if s.fail {
			th.Fail("k")
		}
	}
	if ok, _ := th.Allow("other"); !ok {
		t.Error("another key was throttled")
	}
	th.Fail("k")
	th.Reset("k")
	if ok, _ := th.Allow("k"); !ok {
		t.Error("Reset did not clear the key")
	}
}

func TestUsersAndTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s, c := newService(t, db)
		if has, _ := s.HasUsers(ctx); has {
			t.Fatal("fresh store has users")
		}
		if created, err := s.EnsureFirstAdmin(ctx, "Root@Example.org ", "first admin pw"); err != nil || !created {
			t.Fatalf("EnsureFirstAdmin = %v, %v", created, err)
		}
		if created, err := s.EnsureFirstAdmin(ctx, "other@example.org", "first admin pw"); err != nil || created {
			t.Fatalf("second EnsureFirstAdmin = %v, %v", created, err)
		}
		admin, err := s.UserByEmail(ctx, SystemPrincipal, "root@example.org")
		if err != nil || admin.Role != "admin" {
			t.Fatalf("first admin: %+v %v", admin, err)
		}
		ap := Principal{UserID: admin.ID, Email: admin.Email, Role: Admin}
		bad := []NewUser{
			{Email: "not-an-email", Role: "viewer"},
			{Email: "v@example.org", Role: "owner"},
			{Email: "v@example.org", Role: "viewer", Password: "short"},
		}
		for _, nu := range bad {
			if _, err := s.CreateUser(ctx, ap, nu); err == nil {
				t.Errorf("CreateUser(%+v) accepted", nu)
			}
		}
		v, err := s.CreateUser(ctx, ap, NewUser{Email: "v@example.org", Role: "viewer", Password: "viewer password"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, ap, NewUser{Email: "V@example.org", Role: "viewer"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate: %v", err)
		}
		vp := Principal{UserID: v.ID, Email: v.Email, Role: Viewer}
		if _, err := s.CreateUser(ctx, vp, NewUser{Email: "x@example.org", Role: "admin"}); !errors.Is(err, ErrForbidden) {
			t.Fatalf("viewer created a user: %v", err)
		}
		if _, err := s.UpdateUser(ctx, vp, v.ID, UserPatch{Role: ptr("admin")}); !errors.Is(err, ErrForbidden) {
			t.Fatalf("viewer promoted themselves: %v", err)
		}
		if _, err := s.UpdateUser(ctx, ap, admin.ID, UserPatch{Role: ptr("viewer")}); err == nil {
			t.Fatal("admin demoted themselves")
		}

		secret, tok, err := s.CreateToken(ctx, vp, v.ID, "laptop")
		if err != nil || !strings.HasPrefix(secret, TokenPrefix) || len(secret) < 40 || tok.Hash == secret {
			t.Fatalf("CreateToken = %q %+v %v", secret, tok, err)
		}
		if _, _, err := s.CreateToken(ctx, vp, admin.ID, "steal"); !errors.Is(err, ErrForbidden) {
			t.Fatalf("viewer created a token for the admin: %v", err)
		}
		p, err := s.AuthenticateToken(ctx, secret)
		if err != nil || p.UserID != v.ID || p.Role != Viewer || p.TokenID != tok.ID {
			t.Fatalf("AuthenticateToken = %+v, %v", p, err)
		}
		if ts, _ := s.ListTokens(ctx, vp, v.ID); len(ts) != 1 || ts[0].LastUsedAt == nil || !ts[0].LastUsedAt.Equal(c.now()) {
			t.Fatalf("last used not recorded: %+v", ts)
		}
		for _, wrong := range []string{"", "sst_", secret + "x", strings.TrimPrefix(secret, TokenPrefix)} {
			if _, err := s.AuthenticateToken(ctx, wrong); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("token %q: %v", wrong, err)
			}
		}
		if err := s.RevokeToken(ctx, vp, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, secret); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("revoked token: %v", err)
		}
		// changing one's own password needs the current one
		if _, err := s.UpdateUser(ctx, vp, v.ID, UserPatch{Password: ptr("a brand new password")}); err == nil {
			t.Fatal("own password changed without the current one")
		}
		if _, err := s.UpdateUser(ctx, vp, v.ID, UserPatch{Password: ptr("a brand new password"), CurrentPassword: "viewer password"}); err != nil {
			t.Fatalf("own password change: %v", err)
		}
		// disabling a user stops their tokens
		secret2, _, _ := s.CreateToken(ctx, ap, v.ID, "")
		if _, err := s.UpdateUser(ctx, ap, v.ID, UserPatch{Disabled: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, secret2); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("token of disabled user: %v", err)
		}
		es, _ := db.ListAuditEvents(ctx, store.AuditFilter{})
		actions := map[string]int{}
		for _, e := range es {
			actions[e.Action]++
			if strings.Contains(e.ActorEmail+e.ObjectID, "sst_") {
				t.Errorf("audit event carries a token: %+v", e)
			}
		}
		if actions[audit.UserCreate] != 2 || actions[audit.TokenCreate] != 2 || actions[audit.TokenRevoke] != 1 || actions[audit.UserUpdate] != 2 {
			t.Errorf("audit actions = %v", actions)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s, c := newService(t, db)
		u, err := s.CreateUser(ctx, SystemPrincipal, NewUser{Email: "c@example.org", Role: "contributor", Password: "contributor pw"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Login(ctx, "c@example.org", "wrong password", "10.0.0.1", ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := s.Login(ctx, "nobody@example.org", "contributor pw", "10.0.0.1", ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("unknown user: %v", err)
		}
		// fixation: a session id planted before sign-in is not promoted
		planted := "attacker-chosen-session-id"
		first, err := s.Login(ctx, "C@example.org", "contributor pw", "10.0.0.2", planted)
		if err != nil || first.ID == planted || first.Principal.UserID != u.ID || first.CSRFToken == "" {
			t.Fatalf("Login = %+v, %v", first, err)
		}
		if _, err := s.AuthenticateSession(ctx, planted); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("planted id accepted: %v", err)
		}
		// rotation: signing in again from the same browser ends the old session
		second, err := s.Login(ctx, "c@example.org", "contributor pw", "10.0.0.2", first.ID)
		if err != nil || second.ID == first.ID || second.CSRFToken == first.CSRFToken {
			t.Fatalf("second Login = %+v, %v", second, err)
		}
		if _, err := s.AuthenticateSession(ctx, first.ID); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("old session survived rotation: %v", err)
		}
		got, err := s.AuthenticateSession(ctx, second.ID)
		if err != nil || got.Principal.Role != Contributor || got.CSRFToken != second.CSRFToken {
			t.Fatalf("AuthenticateSession = %+v, %v", got, err)
		}
		// idle expiry slides with use, the absolute limit does not
		for i := 0; i < 4; i++ {
			c.advance(50 * time.Minute)
			_, err := s.AuthenticateSession(ctx, second.ID)
			if wantOK := i < 3; (err == nil) != wantOK {
				t.Fatalf("after %v: %v, want ok=%v", time.Duration(i+1)*50*time.Minute, err, wantOK)
			}
		}
		third, err := s.Login(ctx, "c@example.org", "contributor pw", "10.0.0.2", "")
		if err != nil {
			t.Fatal(err)
		}
		c.advance(61 * time.Minute)
		if _, err := s.AuthenticateSession(ctx, third.ID); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("idle session survived: %v", err)
		}
		// logout
		fourth, _ := s.Login(ctx, "c@example.org", "contributor pw", "10.0.0.2", "")
		if err := s.Logout(ctx, fourth.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateSession(ctx, fourth.ID); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("session survived logout: %v", err)
		}
	})
}

func TestLoginThrottling(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	s, c := newService(t, db)
	if _, err := s.CreateUser(ctx, SystemPrincipal, NewUser{Email: "a@example.org", Role: "admin", Password: "the right one"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Login(ctx, "a@example.org", "guess", "10.0.0.9", ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// the right password is refused too while throttled, from any address
	for _, addr := range []string{"10.0.0.9", "10.0.0.10"} {
		_, err := s.Login(ctx, "a@example.org", "the right one", addr, "")
		var te *ThrottledError
		if !errors.Is(err, ErrThrottled) || !errors.As(err, &te) || te.Wait <= 0 {
			t.Fatalf("from %s while throttled: %v", addr, err)
		}
	}
	// an address guessing across accounts is throttled after four times as many failures
	for i := 0; i < 9; i++ {
		if _, err := s.Login(ctx, fmt.Sprintf("user%d@example.org", i), "x", "10.0.0.9", ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("guess %d on another account: %v", i, err)
		}
	}
	if _, err := s.Login(ctx, "b@example.org", "x", "10.0.0.9", ""); !errors.Is(err, ErrThrottled) {
		t.Fatalf("guessing address after 12 failures: %v", err)
	}
	if _, err := s.Login(ctx, "b@example.org", "x", "10.0.0.11", ""); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("another address: %v", err)
	}
	c.advance(11 * time.Minute)
	if _, err := s.Login(ctx, "a@example.org", "the right one", "10.0.0.9", ""); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
