package mailchimp

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/segsync/segsync/internal/jsonenc"
)

// TestBodiesAreMarshals: the batch and segment bodies are, byte for byte,
// what json.Marshal wrote for them before they encoded themselves: random
// lists drawn from members with awkward addresses and merge values, with
// the fields segsync does not send, and with merge values encoded already
// (jsonenc's own test covers every kind of string and number).
func TestBodiesAreMarshals(t *testing.T) {
	yes := true
	pool := []BatchMember{
		{EmailAddress: "a@x.nl", Status: "subscribed", MergeFields: map[string]any{"FNAME": "Émile", "SCORE": 1e21}},
		{EmailAddress: `q"<&>@x.nl`, Status: "pending", MergeFields: map[string]any{"\u2028": "\x00\xff", "N": -2.5e-9}},
		{EmailAddress: "b@x.nl", Status: "subscribed"},
		{EmailAddress: "c@x.nl", Status: "subscribed", MergeFields: map[string]any{}},
		{EmailAddress: "v@x.nl", Status: "subscribed", VIP: &yes, MergeFields: map[string]any{"LNAME": "de Vries"}},
		{EmailAddress: "l@x.nl", Status: "unsubscribed", Language: "nl", MergeFields: map[string]any{"MAX": math.MaxFloat64}},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		members := make([]BatchMember, r.IntN(5))
		for i := range members {
			members[i] = pool[r.IntN(len(pool))]
		}
		update := r.IntN(2) == 0
		want, err := json.Marshal(struct {
			Members        []BatchMember `json:"members"`
			UpdateExisting bool          `json:"update_existing"`
		}{members, update})
		if err != nil {
			t.Fatal(err)
		}
		sent := slices.Clone(members)
		for i, m := range sent { // some with their merge values encoded already
			if m.MergeFields != nil && r.IntN(2) == 0 {
				if sent[i].EncodedMergeFields, err = jsonenc.Map(nil, m.MergeFields); err != nil {
					t.Fatal(err)
				}
				sent[i].MergeFields = nil
			}
		}
		if got, err := (batchBody{sent, update}).appendJSON(nil); err != nil || string(got) != string(want) {
			t.Fatalf("batch body\n%s (%v), json.Marshal's\n%s", got, err, want)
		}
		var add, remove []string
		for _, m := range members {
			if r.IntN(2) == 0 {
				add = append(add, m.EmailAddress)
			} else {
				remove = append(remove, m.EmailAddress)
			}
		}
		want, _ = json.Marshal(struct {
			Add    []string `json:"members_to_add"`
			Remove []string `json:"members_to_remove"`
		}{append([]string{}, add...), append([]string{}, remove...)})
		if got, _ := (segmentBody{add, remove}).appendJSON(nil); string(got) != string(want) {
			t.Fatalf("segment body\n%s, json.Marshal's\n%s", got, want)
		}
	}
	if _, err := (batchBody{members: []BatchMember{{EmailAddress: "a@x.nl", Status: "subscribed", MergeFields: map[string]any{"N": math.NaN()}}}}).appendJSON(nil); err == nil {
		t.Fatal("a NaN merge value encoded without an error")
	}
}
