package store

import "time"

// PlanState is what an export's last complete run planned from; the next
// run plans only the profiles changed since, unless something asks for a
// full plan (docs/engine.md, "Incremental runs").
type PlanState struct {
	// Fingerprint names what the desired state is computed from: the
	// segments' rules and tag names, the mapping and the merge types.
	Fingerprint string
	// Through is the profiles' updated_at (unix µs) up to which every
	// change was planned; Deletions the profile deletion counter then.
	Through   int64
	Deletions int64
	// FullAt is when the last complete full plan began (database clock);
	// FullRequestedAt when a user last asked for a full re-sync.
	FullAt          time.Time
	FullRequestedAt time.Time
	// Duplicates are the subscriber hashes of contacts merged from several
	// profiles: an incremental run plans them again whatever changed, since
	// a profile that leaves such an address (a new e-mail) changes the
	// contact without a trace under the old address.
	Duplicates []string
}

// ProfileMark is where the profiles stand when a run begins planning.
type ProfileMark struct {
	// Through is the latest updated_at (unix µs): every profile written
	// later has a later one.
	Through   int64
	Deletions int64     // the profile deletion counter
	Now       time.Time // the database's clock
}
