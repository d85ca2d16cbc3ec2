package syncer

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/store"
)

func TestClassify(t *testing.T) {
	d := &desiredContact{hash: "h", email: "a@b.io", customerID: "c1", fieldsHash: "F2", tags: 0b011}
	row := func(mod func(*store.Synced)) *store.Synced {
		s := &store.Synced{Hash: "h", Email: "a@b.io", InAudience: true, InExport: true, FieldsHash: "F2", Tags: 0b011, Status: "subscribed"}
		if mod != nil {
			mod(s)
		}
		return s
	}
	tests := []struct {
		name    string
		d       *desiredContact
		s       *store.Synced
		onLeave string
		fields  string
		add     uint64
		remove  uint64
		leave   string
		counted string
	}{
		{"new contact", d, nil, "untag", KindCreate, 0b011, 0, "", ""},
		{"unchanged", d, row(nil), "untag", "", 0, 0, "", "unchanged"},
		{"fields changed, subscribed: bulk", d, row(func(s *store.Synced) { s.FieldsHash = "F1" }), "untag", fieldsBulk, 0, 0, "", ""},
		{"fields changed, unsubscribed: patch", d, row(func(s *store.Synced) { s.FieldsHash = "F1"; s.Status = "unsubscribed" }), "untag", fieldsPatch, 0, 0, "", ""},
		{"fields changed, pending: patch", d, row(func(s *store.Synced) { s.FieldsHash = "F1"; s.Status = "pending" }), "untag", fieldsPatch, 0, 0, "", ""},
		{"tags changed", d, row(func(s *store.Synced) { s.Tags = 0b110 }), "untag", "", 0b001, 0b100, "", ""},
		{"archived by someone else", d, row(func(s *store.Synced) { s.Status = "archived"; s.FieldsHash = "F1" }), "untag", "", 0, 0, "", "archived"},
		{"archived by us: restore", d, row(func(s *store.Synced) { s.Status = "archived"; s.ArchivedByUs = true; s.Tags = 0b001 }), "archive", KindRestore, 0b010, 0, "", ""},
		{"rejected before, same data", d, &store.Synced{Hash: "h", RejectedHash: "F2"}, "untag", "", 0, 0, "", "rejected"},
		{"rejected before, data changed", d, &store.Synced{Hash: "h", RejectedHash: "F1"}, "untag", KindCreate, 0b011, 0, "", ""},
		{"existing, bad fields rejected before", d, row(func(s *store.Synced) { s.FieldsHash = "F1"; s.RejectedHash = "F2" }), "untag", "", 0, 0, "", "rejected"},
		{"left, untag", nil, row(nil), "untag", "", 0, 0b011, "", "left"},
		{"left, archive ours", nil, row(func(s *store.Synced) { s.CreatedByUs = true }), "archive", "", 0, 0, KindArchive, "left"},
		{"left, archive not ours: untag", nil, row(nil), "archive", "", 0, 0b011, "", "left"},
		{"left, archive ours but cleaned: untag", nil, row(func(s *store.Synced) { s.CreatedByUs = true; s.Status = "cleaned" }), "archive", "", 0, 0b011, "", "left"},
		{"left, unsubscribe", nil, row(nil), "unsubscribe", "", 0, 0b011, KindUnsubscribe, "left"},
		{"left, unsubscribe already unsubscribed", nil, row(func(s *store.Synced) { s.Status = "unsubscribed" }), "unsubscribe", "", 0, 0b011, "", "left"},
		{"left earlier, untagged", nil, row(func(s *store.Synced) { s.InExport = false; s.Tags = 0 }), "unsubscribe", "", 0, 0, "", ""},
		{"left, archived", nil, row(func(s *store.Synced) { s.Status = "archived" }), "untag", "", 0, 0, "", ""},
		{"never created, not desired", nil, &store.Synced{Hash: "h", RejectedHash: "F2"}, "untag", "", 0, 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cnt diffCounts
			c := classify(tc.d, tc.s, tc.onLeave, &cnt)
			if c.fields != tc.fields || c.addTags != tc.add || c.removeTags != tc.remove || c.leave != tc.leave {
				t.Fatalf("classify = fields %q add %b remove %b leave %q; want %q %b %b %q",
					c.fields, c.addTags, c.removeTags, c.leave, tc.fields, tc.add, tc.remove, tc.leave)
			}
			got := ""
			switch {
			case cnt.unchanged == 1:
				got = "unchanged"
			case cnt.skippedArchived == 1:
				got = "archived"
			case cnt.skippedRejected == 1:
				got = "rejected"
			case cnt.left == 1:
				got = "left"
			}
			if got != tc.counted {
				t.Fatalf("counted as %q, want %q (%+v)", got, tc.counted, cnt)
			}
		})
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		in   string // JSON
		typ  string
		want any
	}{
		{`"Ann"`, "text", "Ann"},
		{`12.5`, "text", "12.5"},
		{`true`, "text", "true"},
		{`12.5`, "number", 12.5},
		{`"42"`, "number", 42.0},
		{`"forty"`, "number", ""},
		{`"2024-03-01"`, "date", "2024-03-01"},
		{`"2024-03-01T10:00:00Z"`, "date", "2024-03-01"},
		{`"2024-03-01"`, "birthday", "03/01"},
		{`"March"`, "date", ""},
		{`null`, "text", ""},
		{`"Zo\u00eb \"Z\""`, "text", `Zoë "Z"`}, // escapes are decoded
		{`"Zoë"`, "text", "Zoë"},
	}
	for _, tc := range tests {
		m := make([]any, 1)
		if _, err := pickAttrs([]byte(`{"v":`+tc.in+`}`), []string{"v"}, m, nil); err != nil {
			t.Fatal(err)
		}
		if got := convert(m[0], tc.typ); got != tc.want {
			t.Errorf("convert(%s, %s) = %#v, want %#v", tc.in, tc.typ, got, tc.want)
		}
	}
	// Missing values clear the field, and the hash is stable.
	specs1 := []fieldSpec{{attr: "x", tag: "X", typ: "text"}, {attr: "y", tag: "Y", typ: "text"}}
	specs2 := []fieldSpec{{attr: "y", tag: "Y", typ: "text"}, {attr: "x", tag: "X", typ: "text"}}
	a, empty, h1 := mapFields([]any{"1", nil}, specs1, fieldOrder(specs1))
	_, _, h2 := mapFields([]any{nil, "1"}, specs2, fieldOrder(specs2))
	if string(a) != `{"X":"1","Y":""}` || !empty || h1 != h2 {
		t.Fatalf("mapFields = %s %v %s %s", a, empty, h1, h2)
	}
}

// TestDesiredStreamFields checks that each merge field takes its own
// attribute, the address one too, whatever the order of the attributes in
// the profile, and that the winning profile of an address gives them.
func TestDesiredStreamFields(t *testing.T) {
	specs := []fieldSpec{
		{attr: "last", tag: "LNAME", typ: "text"},
		{attr: "email", tag: "ADDR", typ: "text"},
		{attr: "n", tag: "NUM", typ: "number"},
		{attr: "first", tag: "FNAME", typ: "text"},
		{attr: "last", tag: "LAST2", typ: "text"},
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := []store.HashedMember{
		{CustomerID: "c1", Attrs: []byte(`{"n":3,"first":"Old","email":"a@x.io","last":"Lee"}`), UpdatedAt: at},
		{CustomerID: "c2", Attrs: []byte(`{"first":"Ann","last":"Lee","email":"A@x.io","n":4,"city":"Oslo"}`), UpdatedAt: at.Add(time.Hour)},
		{CustomerID: "c3", Attrs: []byte(`{"email":"b@x.io","first":"Bo"}`), UpdatedAt: at},
	}
	for i := range rows {
		var a struct{ Email string }
		if err := json.Unmarshal(rows[i].Attrs, &a); err != nil {
			t.Fatal(err)
		}
		rows[i].Hash, rows[i].Segments = emailaddr.Hash(a.Email), 1
	}
	slices.SortStableFunc(rows, func(a, b store.HashedMember) int { return strings.Compare(a.Hash, b.Hash) })
	members := func(fn func(store.HashedMember) error) error {
		for _, m := range rows {
			if err := fn(m); err != nil {
				return err
			}
		}
		return nil
	}
	want := map[string]map[string]any{
		"a@x.io": {"LNAME": "Lee", "ADDR": "A@x.io", "NUM": 4.0, "FNAME": "Ann", "LAST2": "Lee"},
		"b@x.io": {"LNAME": "", "ADDR": "b@x.io", "NUM": "", "FNAME": "Bo", "LAST2": ""},
	}
	var cnt desiredCounts
	n := 0
	for d, err := range desiredStream(members, []uint64{1}, "email", specs, &cnt) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if got := d.fieldMap(); !maps.Equal(got, want[d.email]) {
			t.Errorf("%s: fields %v, want %v", d.email, got, want[d.email])
		}
	}
	if n != len(want) {
		t.Errorf("%d contacts, want %d", n, len(want))
	}
}
