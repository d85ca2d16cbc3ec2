// Package reliability is segsync's standing fault suite. Its tests (there is
// no production code here) drive whole runs through the real queue, engine,
// client and connection service against the Mailchimp emulator while faults
// are injected: in the emulator (server errors, dropped connections, 429
// bursts, bodiless 403s, answers slower than the client's timeout, batches
// with mixed per-member errors, a revoked key), in the process (`segsync
// serve` killed with SIGKILL while planning, mid-send, while recording,
// mid-pull and mid-erasure)
// and in the database (PostgreSQL backends terminated mid-run, a SQLite file
// locked by another process, a full disk). Every scenario ends by comparing
// the audience, contact by contact, with the desired state computed
// independently from the test's own data, and by grepping every response,
// log line, run error, metric and audit record for the connection's key.
// docs/reliability.md lists the scenarios and their results.
package reliability
