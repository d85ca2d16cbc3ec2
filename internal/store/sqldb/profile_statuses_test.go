package sqldb_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestProfileStatusesMigration: migration 0020 moves the statuses a
// database kept in profiles.attrs into profile_statuses. Profiles show them
// as before, rules read them, the attributes lose them, and deleting a
// profile deletes its statuses and counts them out of the catalogue.
func TestProfileStatusesMigration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		exec := execer(t, db)
		// Back to the schema before 0020, with statuses in the attributes.
		if db.Dialect() == "postgres" {
			exec(`DROP TRIGGER profile_statuses_of_deleted ON profiles`)
		} else {
			exec(`DROP TRIGGER profile_statuses_of_deleted`)
		}
		exec(`DROP TABLE profile_statuses`)
		if db.Dialect() == "postgres" {
			exec(`DROP FUNCTION segsync_delete_profile_statuses`)
			exec(`DROP FUNCTION segsync_uncount_profile_status`)
		}
		exec(`DELETE FROM schema_migrations WHERE version = 20`)
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{
			{CustomerID: "c1", Attrs: `{"email":"a@shop.io","vip":true}`},
			{CustomerID: "c2", Attrs: `{"email":"b@shop.io"}`},
		}); err != nil {
			t.Fatal(err)
		}
		if db.Dialect() == "postgres" {
			exec(`UPDATE profiles SET attrs = attrs || '{"mailchimp.aud1.status":"unsubscribed","mailchimp.aud1.status_changed_at":"2026-01-02T03:04:05Z","mailchimp.aud2.status":"subscribed","mailchimp.aud2.status_changed_at":"2026-02-03T04:05:06Z"}' WHERE customer_id = 'c1'`)
		} else {
			exec(`UPDATE profiles SET attrs = json_set(attrs, '$."mailchimp.aud1.status"', 'unsubscribed', '$."mailchimp.aud1.status_changed_at"', '2026-01-02T03:04:05Z',
				'$."mailchimp.aud2.status"', 'subscribed', '$."mailchimp.aud2.status_changed_at"', '2026-02-03T04:05:06Z') WHERE customer_id = 'c1'`)
		}
		exec(`INSERT INTO profile_attributes (name, type, profile_count) VALUES ('mailchimp.aud1.status', 'string', 1), ('mailchimp.aud1.status_changed_at', 'date', 1),
			('mailchimp.aud2.status', 'string', 1), ('mailchimp.aud2.status_changed_at', 'date', 1)`)
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}

		p, err := db.GetProfile(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		var shown map[string]any
		if err := json.Unmarshal(p.Attrs, &shown); err != nil {
			t.Fatal(err)
		}
		if shown["mailchimp.aud1.status"] != "unsubscribed" || shown["mailchimp.aud1.status_changed_at"] != "2026-01-02T03:04:05Z" ||
			shown["mailchimp.aud2.status"] != "subscribed" || shown["vip"] != true || len(shown) != 6 {
			t.Fatalf("c1 shows %v", shown)
		}
		var raw string
		if err := db.R.QueryRowContext(ctx, db.Q(`SELECT CAST(attrs AS TEXT) FROM profiles WHERE customer_id = 'c1'`)).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var kept map[string]any
		if err := json.Unmarshal([]byte(raw), &kept); err != nil || len(kept) != 2 {
			t.Fatalf("c1's attributes after the migration: %s (%v)", raw, err)
		}

		rule := func(js string) *segment.Rule {
			t.Helper()
			var r segment.Rule
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatal(err)
			}
			return &r
		}
		for js, want := range map[string]int64{
			`{"attribute":"mailchimp.aud1.status","op":"eq","value":"unsubscribed"}`:                    1,
			`{"attribute":"mailchimp.aud1.status","op":"neq","value":"unsubscribed"}`:                   1, // c2 has none
			`{"attribute":"mailchimp.aud1.status","op":"is_empty"}`:                                     1,
			`{"attribute":"mailchimp.aud2.status","op":"contains","value":"SUB"}`:                       1,
			`{"attribute":"mailchimp.aud1.status_changed_at","op":"lt","value":"2026-01-03"}`:           1,
			`{"attribute":"mailchimp.aud1.status_changed_at","op":"gt","value":"2026-01-03T00:00:00Z"}`: 0,
			`{"attribute":"mailchimp.aud1.status","op":"is_not_empty"}`:                                 1,
			`{"not":{"attribute":"mailchimp.aud1.status","op":"eq","value":"unsubscribed"}}`:            1,
			`{"attribute":"mailchimp.aud1.status","op":"not_in","value":["subscribed","cleaned"]}`:      2,
			`{"attribute":"mailchimp.aud1.status","op":"neq","value":3}`:                                1, // c1's is text: only c2
			`{"not":{"attribute":"mailchimp.aud1.status","op":"neq","value":3}}`:                        1,
		} {
			if n, err := db.CountMatching(ctx, rule(js)); err != nil || n != want {
				t.Errorf("%s: %d (%v), want %d", js, n, err, want)
			}
		}

		// A member read evaluates a rule on a status in SQL, beside one
		// it would otherwise evaluate in Go (sqldb's matchers).
		got := map[string]uint64{}
		if err := db.StreamMembersByHash(ctx, []*segment.Rule{rule(`{"attribute":"mailchimp.aud1.status","op":"neq","value":"unsubscribed"}`),
			rule(`{"attribute":"vip","op":"eq","value":true}`)}, "email", nil, func(m store.HashedMember) error {
			got[m.CustomerID] = m.Segments
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got["c1"] != 2 || got["c2"] != 1 {
			t.Errorf("members by segment bits %v, want c1 2 (vip) and c2 1 (no status)", got)
		}

		count := func(name string) int64 {
			t.Helper()
			attrs, err := db.ProfileAttributes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range attrs {
				if a.Name == name {
					return a.Count
				}
			}
			return 0
		}
		if _, _, err := db.ApplyStatusEvent(ctx, "aud1", "", "cleaned", time.Now()); err != nil { // no contact: nothing
			t.Fatal(err)
		}
		if err := db.DeleteProfile(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_statuses`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d statuses left after the profile was deleted (%v)", left, err)
		}
		if n := count("mailchimp.aud1.status"); n != 0 {
			t.Fatalf("the catalogue still counts %d profiles with mailchimp.aud1.status", n)
		}
	})
}
