package syncer

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/segsync/segsync/internal/mailchimp"
)

// fieldsHash is the hash of a contact's merge values (what synced.fields_hash
// holds): the first 16 bytes of the SHA-256 of their JSON as json.Marshal
// writes a map (keys sorted), which mailchimp.AppendMergeFields writes
// without reflection (half of mapFields' CPU in a 1M first run went to
// json.Marshal). When json.Marshal fails on a value, the hash is of
// nothing, as it always was.
func fieldsHash(fields map[string]any) string {
	var buf [512]byte
	b, err := mailchimp.AppendMergeFields(buf[:0], fields)
	if err != nil {
		return hash16(nil)
	}
	return hash16(b)
}

// hash16 is the hex of the first 16 bytes of b's SHA-256.
func hash16(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
