package mailchimp

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestBodiesAreMarshals: the batch and segment bodies are, byte for byte,
// what json.Marshal wrote for them before they encoded themselves, for
// addresses and merge values of every kind (HTML's <>&, quotes, controls,
// accents, invalid UTF-8, floats in both notations), members with the
// fields segsync does not send, and merge values encoded already.
func TestBodiesAreMarshals(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"", "a", "Émile", "<b>", "&", "\"", "\\", "\n", "\x00", "\xff", "\u2028", "@x.nl"}
	str := func() string {
		s := ""
		for range r.IntN(4) {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	floats := []float64{0, 1, -2.5, 1e-7, 1e21, 123456789.125, math.MaxFloat64}
	yes := true
	for range 2000 {
		members := make([]BatchMember, r.IntN(4))
		for i := range members {
			m := BatchMember{EmailAddress: str(), Status: str()}
			if n := r.IntN(4); n > 0 {
				m.MergeFields = map[string]any{}
				for range n {
					if r.IntN(2) == 0 {
						m.MergeFields[str()] = str()
					} else {
						m.MergeFields[str()] = floats[r.IntN(len(floats))]
					}
				}
			}
			switch r.IntN(8) {
			case 0:
				m.VIP = &yes
			case 1:
				m.Language = "nl"
			}
			members[i] = m
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
				if sent[i].EncodedMergeFields, err = AppendMergeFields(nil, m.MergeFields); err != nil {
					t.Fatal(err)
				}
				sent[i].MergeFields = nil
			}
		}
		if got, err := (batchBody{sent, update}).appendJSON(nil); err != nil || string(got) != string(want) {
			t.Fatalf("batch body\n%s (%v), json.Marshal's\n%s", got, err, want)
		}
		var add, remove []string
		for range r.IntN(3) {
			add = append(add, str())
		}
		for range r.IntN(3) {
			remove = append(remove, str())
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
