// Package segment is segsync's rule engine: the rule tree of SPEC section 8,
// its JSON form, validation with errors that name the path of each fault
// (fielderr.List, e.g. "rule.all[2].op"), and compilation to parameterised
// SQL that runs unchanged in meaning on SQLite and PostgreSQL.
//
// # Comparisons
//
// The JSON type of a condition's value decides how it compares, and a
// profile's attribute takes part only when its stored JSON type fits:
//
//   - number: numeric comparison; the attribute must be a JSON number.
//     PostgreSQL compares exact decimals, SQLite 64-bit integers or floats,
//     so the two can differ only on values with more than 15 significant
//     digits. Numbers beyond float64's range are refused.
//   - date: a string the profile importer types as a date
//     (attrjson.NormalizeDate: YYYY-MM-DD, optionally T or a space and
//     hh:mm[:ss[.f]] with Z, ±hh, ±hhmm or ±hh:mm) is normalised as the
//     importer does: a date stays YYYY-MM-DD, a date with a time becomes
//     YYYY-MM-DDThh:mm:ssZ in UTC. Years must lie in 1000–9999; a string that
//     starts like a date but is not a real one (2024-02-30) is refused.
//     The attribute must be a string holding a date (see DateKeys), else it
//     does not match. A date-only value (2024-03-01) compares calendar days,
//     and a profile's day is the date as written, before any offset — for
//     imported profiles, whose times are stored in UTC, the UTC day. A value
//     with a time compares instants to the second: both sides in UTC, a
//     profile value without time is midnight UTC, a time without offset is
//     UTC, fractions of a second are ignored. between and in take each bound
//     or element at its own granularity.
//   - true/false: booleans; the attribute must be a JSON boolean. Only eq,
//     neq, in and not_in.
//   - any other string: text, and the attribute must be a JSON string. Both
//     sides are compared in the form package textfold defines: NFC, then
//     Unicode simple case folding ("Émile" starts with "émi", "ÖZIL" equals
//     "özil", a decomposed "é" equals a composed one; "STRASSE" does not
//     equal "straße"), identically on both databases whatever their locale.
//     Ordering operators on text (lt, between, …) compare Unicode code
//     points after that folding.
//
// contains, starts_with and ends_with always compare text (even when the
// value looks like a date), take a non-empty string, and search the folded
// attribute for the folded value as a plain substring: no wildcards exist,
// so '%' and '_' mean themselves. They are compiled to instr/substr on
// SQLite and strpos/right on PostgreSQL, not LIKE.
//
// An attribute is missing when it is absent or JSON null. A missing
// attribute matches only is_empty, neq and not_in; is_empty also matches
// the empty string. neq and not_in match a present attribute only when its
// type fits the value ("age neq 3" does not match age "three"); "not" turns
// any rule into its exact complement, so {"not": {eq}} also matches those.
//
// in/not_in take 1–1000 values of one kind (dates with and without time may
// mix); between takes [low, high], both included, and refuses bounds that
// are visibly the wrong way round. A rule may nest 16 levels, hold 1000
// conditions and 5000 in/not_in values in all. Strings may not contain NUL.
// {"all": []} matches every profile and {"any": []} none.
//
// # SQL
//
// Compile returns a boolean SQL expression over a profiles row's attrs
// column with '?' placeholders (rebind them for PostgreSQL after composing
// the statement, e.g. with sqldb.Rebind). No part of a rule is pasted into
// SQL text: attribute names are bound as JSON paths ('$.name' on SQLite,
// the key on PostgreSQL) and values as parameters. Dates use the functions
// segsync_date and segsync_instant (Go functions registered with the SQLite
// driver, plpgsql functions created by migration 0002 on PostgreSQL); the
// conformance suite checks that they agree with DateKeys.
//
// Text compares in textfold.Fold's form without folding any row's text in
// SQL. An ASCII string folds by ASCII lowering, which both databases have
// (lower(), COLLATE NOCASE; under "C" on PostgreSQL, so whatever the
// locale). The fold of every other string attribute is stored beside the
// attributes at write time: the folded shadow, a JSON object in the column
// <column>_fold (profiles.attrs_fold; attrjson.FoldShadow), NULL for a
// profile whose strings are all ASCII. A condition whose values fold to
// ASCII compiles to ASCII lowering alone (the long s, the one NFC rune
// that folds into ASCII, replaced first where a value holds an s); one
// whose values fold to text outside ASCII can only match a value outside
// ASCII, so eq, in and the substring operators read the shadow alone and
// neq and not_in need only the attribute's type besides; ordering and in
// lists mixing both kinds take the shadow's entry, else the attribute's
// ASCII lowering (see textClass). segsync_fold, the same folding as an SQL
// function (textfold.Fold registered with the SQLite driver; a translate()
// generated from Go's Unicode tables on PostgreSQL, migration 0010), fills
// the shadow of profiles stored before it existed (migration 0015); the
// conformance suite checks awkward names, every folding rune, and that the
// shadow follows every change of a profile on both databases.
//
// # Go
//
// NewMatcher makes a rule ready to evaluate in Go on a profile's stored
// attribute object, with the meaning above and SQLite's numbers; SQLite's
// member reads use it (its JSON functions ran in segsync's process once per
// condition and profile). Rules on Mailchimp's statuses are left to SQL.
// The random rules of the tests must select the same profiles in Go, on
// SQLite and on PostgreSQL.
//
// HashExpr is Mailchimp's subscriber hash (emailaddr.Hash) in SQL
// (segsync_hash) for callers that need it inside a query; the store's member
// stream hashes in Go.
package segment
