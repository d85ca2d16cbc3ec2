package mailchimp

import (
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// answerOptions make the json v2 decoder accept what encoding/json
// accepts, and no more: member names in any case but with their
// underscores and dashes (v2 alone would match "newmembers" to
// "new_members"), a name twice (the last wins), and strings that are not
// valid UTF-8 (replaced with U+FFFD).
var answerOptions = jsonv2.JoinOptions(
	jsonv2.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true),
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
)

// decodeAnswer decodes the JSON of a 2xx answer into out as
// json.Unmarshal does, with the decoder of the encoding/json v2 prototype,
// about 2.6 times as fast on batch answers: an answer to a batch call names
// up to 500 members, and decoding them took 2.5 s of CPU in a first export
// of 1M profiles. The types' own UnmarshalJSON methods are called as
// encoding/json calls them.
func decodeAnswer(b []byte, out any) error {
	return jsonv2.Unmarshal(b, out, answerOptions)
}
