package export

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

type fakeStore struct {
	Store // only the methods below are used
	saved store.Export
}

func (f *fakeStore) GetSegment(_ context.Context, id int64) (store.Segment, error) {
	if id > 2 {
		return store.Segment{}, fmt.Errorf("segment %d: %w", id, store.ErrNotFound)
	}
	return store.Segment{ID: id, Name: fmt.Sprintf("Segment %d", id)}, nil
}

func (f *fakeStore) ProfileAttributes(context.Context) ([]store.AttributeInfo, error) {
	return []store.AttributeInfo{{Name: "email", Type: "string"}, {Name: "first", Type: "string"},
		{Name: "spend", Type: "number"}, {Name: "joined", Type: "date"}, {Name: "vip", Type: "boolean"},
		{Name: "mailchimp.aud1.status", Type: "string"}, {Name: "mailchimp.aud1.status_changed_at", Type: "date"}}, nil
}

func (f *fakeStore) CreateExport(_ context.Context, e *store.Export) error {
	e.ID, f.saved = 1, *e
	return nil
}

type fakeAudience struct{}

func (fakeAudience) GetList(_ context.Context, id string) (*mailchimp.List, error) {
	if id != "aud1" {
		return nil, &mailchimp.Error{Status: 404, Title: "Resource Not Found"}
	}
	return &mailchimp.List{ID: id}, nil
}

func (fakeAudience) MergeFields(context.Context, string) ([]mailchimp.MergeField, error) {
	return []mailchimp.MergeField{{Tag: "FNAME", Type: "text"}, {Tag: "SPEND", Type: "number"}, {Tag: "JOINED", Type: "date"}, {Tag: "ZIP", Type: "zip"}}, nil
}

type fakeConns struct{}

func (fakeConns) Authorize(_ context.Context, p auth.Principal, id int64) (store.Connection, error) {
	switch {
	case id == 9:
		return store.Connection{}, fmt.Errorf("connection 9: %w", store.ErrNotFound)
	case id == 2 && p.Role != auth.Admin:
		return store.Connection{}, fmt.Errorf("not shared: %w", auth.ErrForbidden)
	}
	return store.Connection{ID: id}, nil
}

func (fakeConns) Audience(context.Context, auth.Principal, int64) (Audience, error) {
	return fakeAudience{}, nil
}

func TestValidate(t *testing.T) {
	one, two, nine := int64(1), int64(2), int64(9)
	good := func() Input {
		return Input{Name: "x", ConnectionID: &one, AudienceID: "aud1", SegmentIDs: []int64{1, 2},
			Mapping: store.Mapping{Email: "email", FirstName: "first",
				Attributes: []store.AttributeMap{{Attribute: "spend", MergeTag: "SPEND"}, {Attribute: "joined", MergeTag: "joined"}}}}
	}
	contributor := auth.Principal{UserID: 5, Email: "c@x.io", Role: auth.Contributor}
	tests := []struct {
		name   string
		edit   func(*Input)
		fields []string // faults expected, by field
	}{
		{"valid", func(*Input) {}, nil},
		{"everything missing", func(in *Input) { *in = Input{} }, []string{"name", "segment_ids", "mapping.email", "connection_id", "audience_id"}},
		{"bad policies", func(in *Input) { in.StatusIfNew, in.OnLeave, in.Schedule = "cleaned", "delete", "hourly" },
			[]string{"status_if_new", "on_leave", "schedule"}},
		{"unknown segment, twice", func(in *Input) { in.SegmentIDs = []int64{3, 1, 1} }, []string{"segment_ids[0]", "segment_ids[2]"}},
		{"unknown attributes", func(in *Input) { in.Mapping.Email, in.Mapping.LastName = "mail", "surname" },
			[]string{"mapping.email", "mapping.last_name"}},
		{"merge field missing", func(in *Input) { in.Mapping.Attributes[0].MergeTag = "LTV" }, []string{"mapping.attributes[0].merge_tag"}},
		{"merge field missing, created", func(in *Input) {
			in.Mapping.Attributes[0].MergeTag, in.CreateMissingMergeFields = "LTV", true
		}, nil},
		{"LNAME missing", func(in *Input) { in.Mapping.LastName = "first" }, []string{"mapping.last_name"}},
		{"Mailchimp's statuses mapped", func(in *Input) {
			in.Mapping.Email, in.Mapping.Attributes[1].Attribute = "mailchimp.aud1.status", "mailchimp.aud1.status_changed_at"
		}, []string{"mapping.email", "mapping.attributes[1].attribute"}},
		{"incompatible type", func(in *Input) { in.Mapping.Attributes[0].Attribute = "first" }, []string{"mapping.attributes[0].merge_tag"}},
		{"bad merge tag", func(in *Input) { in.Mapping.Attributes[1].MergeTag = "TOO_LONG_TAG" }, []string{"mapping.attributes[1].merge_tag"}},
		{"tag mapped twice", func(in *Input) { in.Mapping.Attributes[1].MergeTag = "FNAME" }, []string{"mapping.attributes[1].merge_tag"}},
		{"unknown audience", func(in *Input) { in.AudienceID = "nope" }, []string{"audience_id"}},
		{"unknown connection", func(in *Input) { in.ConnectionID = &nine }, []string{"connection_id"}},
		{"connection not shared", func(in *Input) { in.ConnectionID = &two }, []string{"connection_id"}},
		{"tag prefix too long", func(in *Input) { in.TagPrefix = strings.Repeat("p", 51) }, []string{"tag_prefix"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{}
			s := &Service{Store: st, Connections: fakeConns{}}
			in := good()
			tc.edit(&in)
			_, err := s.Create(context.Background(), contributor, in)
			var got []string
			var fl fielderr.List
			if errors.As(err, &fl) {
				for _, f := range fl {
					got = append(got, f.Field)
				}
			} else if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("faults %v (%v), want %v", got, err, tc.fields)
			}
			if err == nil && (st.saved.StatusIfNew != "subscribed" || st.saved.OnLeave != "untag" || st.saved.Schedule != "refresh" || st.saved.CreatedBy != "c@x.io") {
				t.Fatalf("defaults not applied: %+v", st.saved)
			}
		})
	}
	// Viewers may not create exports at all.
	if _, err := (&Service{Store: &fakeStore{}, Connections: fakeConns{}}).Create(context.Background(), auth.Principal{UserID: 1, Role: auth.Viewer}, good()); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("viewer create: %v", err)
	}
}

func TestCompatible(t *testing.T) {
	tests := []struct {
		attr, merge string
		ok          bool
	}{
		{"string", "text", true}, {"number", "text", true}, {"date", "text", true}, {"boolean", "text", true},
		{"number", "number", true}, {"string", "number", false},
		{"date", "date", true}, {"date", "birthday", true}, {"string", "date", false},
		{"string", "zip", true}, {"boolean", "phone", false}, {"string", "address", false},
	}
	for _, tc := range tests {
		if got := Compatible(tc.attr, tc.merge); got != tc.ok {
			t.Errorf("Compatible(%s, %s) = %v", tc.attr, tc.merge, got)
		}
	}
}

func (f *fakeStore) GetExport(_ context.Context, id int64) (store.Export, error) {
	if id != 1 {
		return store.Export{}, fmt.Errorf("export %d: %w", id, store.ErrNotFound)
	}
	e := f.saved
	e.ID = id
	return e, nil
}

func (f *fakeStore) UpdateExport(_ context.Context, e *store.Export) error {
	f.saved = *e
	return nil
}

type recorded struct {
	action, objectType string
	id                 any
	detail             map[string]any
}

type fakeRecorder struct{ events []recorded }

func (r *fakeRecorder) Record(_ context.Context, _ audit.Actor, action, objectType string, id any, detail map[string]any) error {
	r.events = append(r.events, recorded{action, objectType, id, detail})
	return nil
}

// TestAuditOfMappingChanges checks that an update names each changed field
// of the definition with its old and new value, the merge-field mapping and
// the tag prefix among them, and nothing that did not change.
func TestAuditOfMappingChanges(t *testing.T) {
	one := int64(1)
	rec := &fakeRecorder{}
	s := &Service{Store: &fakeStore{}, Connections: fakeConns{}, Audit: rec}
	p := auth.Principal{UserID: 5, Email: "c@x.io", Role: auth.Contributor}
	in := Input{Name: "x", ConnectionID: &one, AudienceID: "aud1", SegmentIDs: []int64{1}, TagPrefix: "shop: ",
		Mapping: store.Mapping{Email: "email", Attributes: []store.AttributeMap{{Attribute: "spend", MergeTag: "SPEND"}}}}
	e, err := s.Create(context.Background(), p, in)
	if err != nil {
		t.Fatal(err)
	}
	in.Mapping.FirstName, in.TagPrefix = "first", ""
	in.Mapping.Attributes = []store.AttributeMap{{Attribute: "joined", MergeTag: "JOINED"}}
	if _, err := s.Update(context.Background(), p, e.ID, in); err != nil {
		t.Fatal(err)
	}
	if len(rec.events) != 2 || rec.events[0].action != audit.ExportCreate || rec.events[1].action != audit.ExportUpdate {
		t.Fatalf("events %+v", rec.events)
	}
	if m, ok := rec.events[0].detail["mapping"].(store.Mapping); !ok || m.Attributes[0].MergeTag != "SPEND" || rec.events[0].detail["changed"] != nil {
		t.Errorf("create detail %+v", rec.events[0].detail)
	}
	changed, _ := rec.events[1].detail["changed"].(map[string]any)
	if len(changed) != 2 {
		t.Fatalf("changed = %v, want mapping and tag_prefix", changed)
	}
	mapping := changed["mapping"].(map[string]any)
	if old, cur := mapping["old"].(store.Mapping), mapping["new"].(store.Mapping); old.FirstName != "" || old.Attributes[0].MergeTag != "SPEND" ||
		cur.FirstName != "first" || cur.Attributes[0].MergeTag != "JOINED" {
		t.Errorf("mapping change %+v", mapping)
	}
	if tp := changed["tag_prefix"].(map[string]any); tp["old"] != "shop: " || tp["new"] != "" {
		t.Errorf("tag prefix change %+v", tp)
	}
}
