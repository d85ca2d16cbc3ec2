package audit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

func TestScrub(t *testing.T) {
	in := map[string]any{
		"display_name": "Main", "api_key": "k", "AccessToken": "t", "password_hash": "p",
		"nested": map[string]any{"client_secret": "s", "dc": "us6"}, "allow_contributors": true,
	}
	got := Scrub(in)
	for _, k := range []string{"api_key", "AccessToken", "password_hash"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s survived Scrub", k)
		}
	}
	if got["display_name"] != "Main" || got["allow_contributors"] != true {
		t.Errorf("plain fields lost: %v", got)
	}
	nested := got["nested"].(map[string]any)
	if _, ok := nested["client_secret"]; ok || nested["dc"] != "us6" {
		t.Errorf("nested = %v", nested)
	}
	if Scrub(nil) != nil {
		t.Error("Scrub(nil) != nil")
	}
}

func TestRecord(t *testing.T) {
	db := dbtest.SQLite(t)
	l := New(db, nil)
	ctx := context.Background()
	tests := []struct {
		actor  Actor
		id     any
		wantID string
		who    string
	}{
		{Actor{ID: 0}, int64(7), "7", "system"},
		{Actor{ID: 3, Email: "a@x.org"}, "abc", "abc", "a@x.org"},
		{System, 12, "12", "system"},
	}
	for _, tt := range tests {
		if err := l.Record(ctx, tt.actor, ConnectionCreate, "connection", tt.id, map[string]any{"api_key": "SECRET"}); err != nil {
			t.Fatal(err)
		}
		es, err := l.List(ctx, store.AuditFilter{Limit: 1})
		if err != nil || len(es) != 1 {
			t.Fatalf("List: %v %v", es, err)
		}
		if es[0].ObjectID != tt.wantID || es[0].ActorEmail != tt.who || es[0].Detail != nil {
			t.Errorf("event = %+v, want object %s by %s without detail", es[0], tt.wantID, tt.who)
		}
	}
}

func TestParseKinds(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{"segment", []string{"segment"}, false},
		{"segment, profile,export", []string{"segment", "profile", "export"}, false},
		{"profile,profile", []string{"profile"}, false},
		{"segments", nil, true},
		{"segment,", nil, true},
		{"", nil, true},
		{"Segment", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseKinds("kind", tt.in)
		if tt.bad {
			var fe fielderr.List
			if !errors.As(err, &fe) || fe[0].Field != "kind" || !strings.Contains(fe[0].Message, "segment, source") {
				t.Errorf("ParseKinds(%q) = %v, %v; want a fault of field kind listing the kinds", tt.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseKinds(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
