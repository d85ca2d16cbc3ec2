package sqldb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

var _ store.Store = (*sqldb.DB)(nil)

func TestUsersTokensSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		u := store.User{Email: "ann@example.org", Role: "admin", PasswordHash: "h"}
		if err := db.CreateUser(ctx, &u); err != nil || u.ID == 0 {
			t.Fatalf("CreateUser: id %d, %v", u.ID, err)
		}
		dup := store.User{Email: "ann@example.org", Role: "viewer"}
		if err := db.CreateUser(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate email: got %v, want ErrConflict", err)
		}
		if err := db.CreateUser(ctx, &store.User{Email: "x@example.org", Role: "root"}); err == nil {
			t.Fatal("role outside the CHECK was accepted")
		}
		got, err := db.GetUserByEmail(ctx, "ann@example.org")
		if err != nil || got.ID != u.ID || got.Role != "admin" || got.Disabled {
			t.Fatalf("GetUserByEmail = %+v, %v", got, err)
		}
		if _, err := db.GetUser(ctx, 999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetUser(999): %v, want ErrNotFound", err)
		}
		got.Role, got.Disabled = "viewer", true
		if err := db.UpdateUser(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got, _ = db.GetUser(ctx, u.ID); got.Role != "viewer" || !got.Disabled {
			t.Fatalf("after update: %+v", got)
		}
		if n, err := db.CountUsers(ctx); err != nil || n != 1 {
			t.Fatalf("CountUsers = %d, %v", n, err)
		}

		tok := store.Token{UserID: u.ID, Name: "ci", Hash: "abc", Prefix: "sst_ab"}
		if err := db.CreateToken(ctx, &tok); err != nil {
			t.Fatal(err)
		}
		tk, tu, err := db.TokenByHash(ctx, "abc")
		if err != nil || tk.ID != tok.ID || tu.ID != u.ID || tk.UserEmail != u.Email || tk.LastUsedAt != nil {
			t.Fatalf("TokenByHash = %+v %+v %v", tk, tu, err)
		}
		now := time.Now().Truncate(time.Microsecond)
		if err := db.TouchToken(ctx, tok.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeToken(ctx, tok.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeToken(ctx, tok.ID, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		tk, _ = db.GetToken(ctx, tok.ID)
		if tk.LastUsedAt == nil || !tk.LastUsedAt.Equal(now) || tk.RevokedAt == nil || !tk.RevokedAt.Equal(now) {
			t.Fatalf("token times: used %v revoked %v, want %v", tk.LastUsedAt, tk.RevokedAt, now)
		}
		for _, uid := range []int64{0, u.ID} {
			if ts, err := db.ListTokens(ctx, uid); err != nil || len(ts) != 1 {
				t.Fatalf("ListTokens(%d) = %d, %v", uid, len(ts), err)
			}
		}
		if ts, _ := db.ListTokens(ctx, u.ID+1); len(ts) != 0 {
			t.Fatalf("ListTokens of another user = %d tokens", len(ts))
		}
		if _, _, err := db.TokenByHash(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}

		s := store.Session{IDHash: "s1", UserID: u.ID, CSRFToken: "c", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		old := s
		old.IDHash, old.ExpiresAt = "s0", now.Add(-time.Hour)
		if err := db.CreateSession(ctx, old); err != nil {
			t.Fatal(err)
		}
		gs, gu, err := db.SessionByHash(ctx, "s1")
		if err != nil || gu.ID != u.ID || !gs.ExpiresAt.Equal(s.ExpiresAt) || gs.CSRFToken != "c" {
			t.Fatalf("SessionByHash = %+v %+v %v", gs, gu, err)
		}
		if n, err := db.DeleteExpiredSessions(ctx, now); err != nil || n != 1 {
			t.Fatalf("DeleteExpiredSessions = %d, %v", n, err)
		}
		if err := db.TouchSession(ctx, "s1", now, now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteUserSessions(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.SessionByHash(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after DeleteUserSessions: %v", err)
		}
	})
}

func TestConnectionsAndAudit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		u := store.User{Email: "ann@example.org", Role: "admin"}
		if err := db.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
		now := time.Now().Truncate(time.Microsecond)
		c := store.Connection{DisplayName: "Main", AuthMethod: "api_key", Credential: []byte{0, 1, 2, 255},
			APIBaseURL: "http://127.0.0.1:1/3.0", AccountName: "Acme", DC: "us6", ExportUserID: u.ID,
			ConsentBy: u.ID, ConsentByEmail: u.Email, ConsentAt: now}
		if err := db.CreateConnection(ctx, &c); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetConnection(ctx, c.ID)
		if err != nil || got.ExportUserEmail != u.Email || string(got.Credential) != string(c.Credential) ||
			!got.ConsentAt.Equal(now) || got.Type != "mailchimp" || got.AllowContributors {
			t.Fatalf("GetConnection = %+v, %v", got, err)
		}
		got.AllowContributors, got.DisplayName, got.LastTestedAt = true, "Renamed", &now
		if err := db.UpdateConnection(ctx, got); err != nil {
			t.Fatal(err)
		}
		cs, err := db.ListConnections(ctx)
		if err != nil || len(cs) != 1 || !cs[0].AllowContributors || cs[0].DisplayName != "Renamed" || cs[0].LastTestedAt == nil {
			t.Fatalf("ListConnections = %+v, %v", cs, err)
		}
		ex := store.Export{Name: "e", ConnectionID: &c.ID, AudienceID: "a1", SegmentIDs: []int64{}, Mapping: store.Mapping{Email: "email"},
			StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
		if err := db.CreateExport(ctx, &ex); err != nil {
			t.Fatal(err)
		}
		if n, err := db.ConnectionExports(ctx, c.ID); err != nil || n != 1 {
			t.Fatalf("ConnectionExports = %d, %v", n, err)
		}
		if _, err := db.DeleteConnection(ctx, c.ID, false); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("deleting a used connection: %v, want ErrConflict", err)
		}
		if n, err := db.DeleteConnection(ctx, c.ID, true); err != nil || n != 1 {
			t.Fatalf("DeleteConnection(detach) = %d, %v", n, err)
		}
		if got, err := db.GetExport(ctx, ex.ID); err != nil || got.ConnectionID != nil {
			t.Fatalf("export after detach: %+v, %v", got.ConnectionID, err)
		}
		if _, err := db.GetConnection(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if _, err := db.DeleteConnection(ctx, c.ID, false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}

		st := store.OAuthState{StateHash: "h", UserID: u.ID, DisplayName: "OA", ConsentAt: now, ExpiresAt: now.Add(time.Minute)}
		if err := db.CreateOAuthState(ctx, st); err != nil {
			t.Fatal(err)
		}
		if got, err := db.TakeOAuthState(ctx, "h"); err != nil || got.DisplayName != "OA" || !got.ExpiresAt.Equal(st.ExpiresAt) {
			t.Fatalf("TakeOAuthState = %+v, %v", got, err)
		}
		if _, err := db.TakeOAuthState(ctx, "h"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state taken twice: %v", err)
		}

		for i, a := range []string{"user.create", "connection.create", "connection.delete"} {
			e := store.AuditEvent{ActorID: u.ID, ActorEmail: u.Email, Action: a, ObjectType: "connection", ObjectID: "1",
				Detail: map[string]any{"i": i}}
			if err := db.AddAuditEvent(ctx, &e); err != nil || e.ID == 0 {
				t.Fatalf("AddAuditEvent: %v", err)
			}
		}
		es, err := db.ListAuditEvents(ctx, store.AuditFilter{Limit: 2})
		if err != nil || len(es) != 2 || es[0].Action != "connection.delete" || es[0].Detail["i"] != float64(2) || es[0].ActorID != u.ID {
			t.Fatalf("ListAuditEvents = %+v, %v", es, err)
		}
		es, err = db.ListAuditEvents(ctx, store.AuditFilter{BeforeID: es[1].ID, Action: "user.create"})
		if err != nil || len(es) != 1 {
			t.Fatalf("paged ListAuditEvents = %+v, %v", es, err)
		}
	})
}
