// Package mailchimp is segsync's client for the Mailchimp Marketing API v3:
// authentication and base URL, typed calls for what the export engine needs,
// Mailchimp's problem+json errors as Go errors, a per-account concurrency
// limiter and the retry policy. It owns every rule about how hard segsync may
// push on Mailchimp, so callers never retry or throttle on their own.
//
// # Base URL and credentials
//
// An API key ends in its data center ("…-us6"), which gives
// https://us6.api.mailchimp.com/3.0. An OAuth access token has no data
// center; its base URL comes from the metadata endpoint (FetchMetadata,
// Metadata.BaseURL). Config.BaseURL overrides both (emulator, proxy). Keys
// are sent as HTTP Basic passwords, tokens as Bearer. A credential never
// appears in an error message or a log line.
//
// # Concurrency
//
// Mailchimp allows 10 simultaneous connections per user; beyond that it
// answers 429 and, if abused, disables the key. Every request therefore takes
// a slot from a Limiter, keyed by Client.Account, for exactly as long as it is
// in flight: the slot is released as soon as the response body has been read,
// and is not held while the client sleeps between attempts. NewLocalLimiter
// shares slots among every caller of one process (at most 10 per account);
// a cross-process implementation (for example a PostgreSQL lease) only has to
// satisfy the same one-method interface.
//
// # Retries
//
// One call retries at most MaxRetries times after failures (default 6) and
// RateLimitRetries times after 429s and bodiless 403s (default 20: such a
// call never ran, and a busy account is no reason to give up on it). Each
// attempt is bounded by Config.Timeout (default 120 s, Mailchimp's own limit):
//
//   - 429 Too Many Requests: wait for Retry-After (seconds or an HTTP date,
//     capped by MaxRetryAfter) when present, else jittered exponential backoff.
//   - 403 without a problem+json body: Mailchimp's other overload signal
//     ("429 or 403 with no JSON body"); treated like a 429.
//   - 5xx, attempt timeouts, dropped or reset connections, truncated bodies:
//     jittered exponential backoff (base RetryBaseDelay, doubling, capped at
//     RetryMaxDelay, each wait drawn uniformly from [d/2, d]); a 503's
//     Retry-After is honoured like a 429's.
//   - A Limiter that fails for another reason than the caller's context
//     (a lease store that is down) is retried like a network fault.
//   - 401 and 403 with a problem document: returned at once (IsAuth).
//   - Every other 4xx: returned at once; the request is wrong, not unlucky.
//
// The caller's context bounds everything, including limiter waits and
// backoff sleeps. Request bodies are kept as bytes and re-sent unchanged, so a
// retry replays exactly the same request. Mailchimp may have applied a request
// whose answer was lost; the export engine's writes (PUT upserts, PATCH,
// batch subscribe, segment member changes) are idempotent under replay. A
// replayed POST /members may answer "Member Exists" (IsMemberExists), and a
// replayed DELETE "Method Not Allowed" for an already archived contact, which
// ArchiveMember takes as done when an earlier attempt may have archived it.
// Likewise ChangeEmail (a replayed PATCH finds the old hash gone and returns
// the member at the new address) and CreateWebhook (a replayed POST finds
// the URL taken and returns the webhook that holds it).
//
// # Webhooks
//
// ListWebhooks, CreateWebhook and DeleteWebhook manage an audience's
// webhooks; ParseWebhook reads what Mailchimp POSTs (form-encoded type,
// fired_at and data[…]) strictly, and EncodeWebhook writes it (the
// emulator delivers with it, so both sides agree).
//
// # Per-contact rejections
//
// Classify and ClassifyBatchError sort member-level failures into Permanent
// (compliance state, permanently deleted, fake or invalid address, invalid
// merge value, contact exists, …: retrying the same data cannot succeed) and
// Transient (everything else: throttling, server faults, network), with a
// short reason suitable for storing and showing to users.
package mailchimp
