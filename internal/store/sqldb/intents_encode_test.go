package sqldb

import (
	"encoding/json"
	"testing"

	"github.com/segsync/segsync/internal/store"
)

// TestEncodeIntentsIsMarshals: intents are written as json.Marshal wrote
// them as [][4]string, and read back as they were.
func TestEncodeIntentsIsMarshals(t *testing.T) {
	intents := []store.Intent{
		{Hash: "h1", Email: "a@x.io", CustomerID: "c1", FieldsHash: "f1"},
		{Hash: "h2", Email: `b"<&>@x.io`, CustomerID: "Émile\x00\xff\u2028", FieldsHash: ""},
	}
	rows := make([][4]string, len(intents))
	for i, in := range intents {
		rows[i] = [4]string{in.Hash, in.Email, in.CustomerID, in.FieldsHash}
	}
	want, _ := json.Marshal(rows)
	got := encodeIntents(intents)
	if got != string(want) {
		t.Fatalf("encodeIntents = %s, json.Marshal's %s", got, want)
	}
	back, err := decodeIntents(got)
	if err != nil || len(back) != 2 || back[1].Email != intents[1].Email || back[0] != intents[0] {
		t.Fatalf("decoded %+v (%v), want %+v", back, err, intents)
	}
}
