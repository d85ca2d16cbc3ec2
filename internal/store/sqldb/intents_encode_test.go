package sqldb

import (
	"encoding/json"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/store"
)

// TestEncodeIntentsIsMarshals: intents are written as json.Marshal wrote
// them as [][3]string, without the hash, and read back as they were, the
// hash derived from the address.
func TestEncodeIntentsIsMarshals(t *testing.T) {
	intents := []store.Intent{
		{Email: "a@x.io", CustomerID: "c1", FieldsHash: "f1"},
		{Email: `b"<&>@x.io`, CustomerID: "Émile\x00\xff\u2028", FieldsHash: ""},
	}
	rows := make([][3]string, len(intents))
	for i := range intents {
		intents[i].Hash = emailaddr.Hash(intents[i].Email)
		rows[i] = [3]string{intents[i].Email, intents[i].CustomerID, intents[i].FieldsHash}
	}
	want, _ := json.Marshal(rows)
	got := encodeIntents(intents)
	if got != string(want) {
		t.Fatalf("encodeIntents = %s, json.Marshal's %s", got, want)
	}
	back, err := decodeIntents(got)
	if err != nil || len(back) != 2 || back[1].Email != intents[1].Email || back[1].Hash != intents[1].Hash || back[0] != intents[0] {
		t.Fatalf("decoded %+v (%v), want %+v", back, err, intents)
	}
}

// TestDecodeIntentsOfEarlierBatches: a batch noted with the hash first
// reads back with its hash as written; a row of another length is an
// error.
func TestDecodeIntentsOfEarlierBatches(t *testing.T) {
	back, err := decodeIntents(`[["h1","a@x.io","c1","f1"]]`)
	if err != nil || len(back) != 1 || back[0] != (store.Intent{Hash: "h1", Email: "a@x.io", CustomerID: "c1", FieldsHash: "f1"}) {
		t.Fatalf("decoded %+v (%v)", back, err)
	}
	if _, err := decodeIntents(`[["a@x.io","c1"]]`); err == nil {
		t.Fatal("a row of two values decoded")
	}
}
