// Package emulator is an in-memory stand-in for the Mailchimp Marketing API
// v3, used by segsync's tests, the demo and `segsync emulator`. It is judged
// against Mailchimp's published behaviour (the API notes, the OpenAPI
// document in testdata) and against the official Node client.
//
// Start one in a test with emulatortest.Start (or Start / Listen), point a client at
// Server.URL ("http://127.0.0.1:PORT/3.0") with one of Keys(), and inspect
// the outcome with Contact, Contacts, Calls, WriteCalls and MaxConcurrent.
// Seed and CreateList set up audiences and contacts in any state directly.
//
// Covered: API-key auth (Basic with any user, or Bearer) and OAuth 2
// (/oauth2/authorize, /oauth2/token, /oauth2/metadata at the server root);
// GET /ping and /; audiences; merge fields; members (list, get, PUT, PATCH,
// POST, DELETE = archive, delete-permanent, member tags); batch subscribe
// (POST /lists/{id}); segments and tags (static segment batches, segment
// members, tag-search); problem+json errors with Mailchimp's titles; the
// per-account connection limit, latency and fault injection; the control
// endpoints POST /_emulator/lists/{id}/members/{hash}/unsubscribe and
// …/bounce that play a recipient's own unsubscribe and a hard bounce;
// audience webhooks (GET|POST /lists/{id}/webhooks, GET|PATCH|DELETE
// …/webhooks/{webhook_id}) with delivery of events; address changes
// through PATCH or PUT of a member.
//
// # Webhooks
//
// Creating a webhook (or PATCHing its url) first sends a GET to the URL, as
// Mailchimp does, and refuses the webhook with 400 "Invalid Resource" ("We
// couldn't verify the URL is working. … HTTP Code: N") unless it answers
// 200. Member changes are then POSTed to every webhook of the audience
// whose events include the type and whose sources include the origin, as
// application/x-www-form-urlencoded bodies built by mailchimp.EncodeWebhook
// (type, fired_at "YYYY-MM-DD HH:MM:SS" UTC, data[…]), with User-Agent
// "MailChimp.com":
//
//   - source user: the control endpoints (and Unsubscribe, Bounce):
//     unsubscribe (data[action]=unsub, data[reason]=manual) and cleaned
//     (data[reason]=hard);
//   - source api: member POST, PUT, PATCH and batch subscribe: subscribe
//     (created as subscribed, or changed to subscribed), unsubscribe
//     (changed to unsubscribed), cleaned (changed to cleaned), profile
//     (merge fields, email type or VIP changed without a status change),
//     upemail (address changed: data[old_email], data[new_email],
//     data[new_id]); delete-permanent: unsubscribe with data[action]=delete.
//   - Nothing is sent for the admin source (there is no web app), for
//     archiving, for tag changes, or for writes that change nothing.
//
// Delivery is asynchronous: one bounded queue (4096 events) and one worker
// per emulator, started with the first event; an API call never waits for
// it, and an event that does not fit is dropped and counted
// (DroppedWebhooks). A failed attempt (no answer within WebhookTimeout, a
// connection error, or a status other than 2xx) is retried WebhookRetries
// times (default 3, as Mailchimp) after WebhookRetryDelay, doubling
// (default 1 s; Mailchimp spreads its retries over 75 minutes). A 410
// disables the webhook at once (Mailchimp's rule since 2021); it stays
// listed. Options.WebhookClient replaces the HTTP client of validations
// and deliveries; Deliveries and Validations list the attempts,
// WaitWebhooks waits until nothing is pending, Close (called by
// Server.Close) stops the worker.
//
// # Choices where Mailchimp's behaviour is undocumented
//
// The emulator never gives the caller the benefit of the doubt: where the
// real API might refuse, it refuses; where it might change a contact, it
// changes it.
//
//   - Batch subscribe: a member without status, with an empty or unknown
//     status, or without email_address makes the whole request 400 (not a
//     per-member error). More than 500 members: 400.
//   - Batch subscribe with update_existing false: an existing contact gets
//     ERROR_CONTACT_EXISTS, but an archived contact is restored with the
//     status sent (as a new contact would be).
//   - Batch subscribe: the same address twice in one request (without
//     skip_duplicate_check) is a per-member ERROR_GENERIC for the repeats.
//   - Batch subscribe with sync_tags true replaces the contact's tags with the
//     member's "tags" (absent from the spec; accepted as a list of names): no
//     tags means all tags are removed.
//   - PUT and PATCH on an archived contact restore it: to status if given,
//     else (PUT) to status_if_new, else (PATCH) to its status before archiving.
//     POST on an archived contact is "Member Exists".
//   - PUT of a new contact with both status and status_if_new creates it
//     with status.
//   - PUT requires email_address and status_if_new even for existing
//     contacts (both are "required" in the spec).
//   - Address changes (Mailchimp allows them through PATCH and PUT since
//     2016): an email_address that does not hash to the path's existing
//     member changes that member's address after the rest of the body was
//     applied. The member's id becomes the new subscriber hash and the old
//     hash answers 404; status (compliance state included), merge fields,
//     tags (so static segment membership), VIP and contact_id stay;
//     unique_email_id follows the address. Refused, changing nothing: an
//     address that already is a contact, archived included (400 "Invalid
//     Resource", errors[email_address]: «"a@b.io" is already in this
//     list with a status of "subscribed".» as on Mailchimp); a permanently
//     deleted address (400 "Forgotten Email Not Subscribed"; undocumented);
//     a fake or invalid one. PUT to an unknown hash with an address that
//     does not hash to it is 400 (it would be neither an update nor a
//     create of that hash); PATCH to an unknown hash is 404. The old
//     address is free afterwards.
//   - Webhooks: without events or sources in the creation body, every event
//     is on, and the sources user and admin are on but api is off (the
//     defaults Mailchimp documented for API 2.0; v3 does not say). A second
//     webhook with the same URL on an audience is refused (400 "Invalid
//     Resource", errors[url]), as Mailchimp does; unknown event or source
//     names are refused. PATCH changes only what it sends. Webhook ids are
//     10 hex digits. data[id] and data[new_id] of events are the member's
//     unique_email_id (10 hex digits, as in Mailchimp's samples), not the
//     subscriber hash.
//   - Compliance state (unsubscribed by the recipient, bounced, or set to
//     cleaned through the API): any change to subscribed or transactional is
//     "Member In Compliance State"; only a self-unsubscribed contact may be
//     set to pending (re-confirmation; it keeps its compliance state, so it
//     still cannot be subscribed through the API); unsubscribed is allowed.
//   - Contacts unsubscribed through the API carry no compliance state and can
//     be re-subscribed through the API (as Mailchimp allows).
//   - Fake or invalid addresses ("<addr> looks fake or invalid"): malformed
//     addresses, domains example.com/.net/.org, test.com, mailinator.com and
//     their subdomains, top-level domains .example .test .invalid .localhost
//     .local, and the local parts test, fake, asdf, example, invalid, noemail,
//     none, null. Addresses are not trimmed: surrounding spaces are invalid.
//   - Merge fields: an unknown merge tag (case matters: "fname" is unknown) is
//     400 "Your merge fields were invalid." with errors, as is a value of the
//     wrong type: text-like fields take strings only (a JSON number for a
//     text field is refused), number fields take numbers or numeric strings,
//     dates YYYY-MM-DD or the field's date_format, null is refused for every
//     type. "" clears a value. Required fields without a default are enforced
//     on create unless skip_merge_validation is set.
//   - At most 30 merge fields per audience; merge tags are 1–10 characters
//     of A–Z, 0–9 and _, starting with a letter.
//   - Tag names are matched without regard to case (the first spelling is
//     kept), trimmed, and at most 100 characters.
//   - DELETE (archive) of a cleaned, pending or archived contact is 405.
//   - Members listing: without a status filter archived contacts are left
//     out (status=archived lists them); count above 1000 is 400 (not capped);
//     since_last_changed is strict (changed after the second given) with
//     one-second resolution, before_last_changed likewise.
//   - last_changed moves on every successful member write (status, merge
//     fields, attributes), on a recipient's unsubscribe or bounce, and on
//     archive; tag changes alone do not move it.
//   - Segment members listing leaves out unsubscribed, cleaned and
//     transactional contacts unless include_* is set, and never lists
//     archived ones.
//   - Static segment batches: both arrays absent is 400; addresses not in the
//     audience and removals of untagged contacts are reported in errors and
//     otherwise ignored. Archived contacts can be tagged.
//   - PATCH of a segment with static_segment replaces its membership (an
//     empty array empties it).
//   - Faults (FailRate): each API request draws, from a sequence seeded by
//     Seed, whether it fails and how (500, 503 or a dropped connection, in
//     equal shares) and whether before or after the change was applied (equal
//     shares). Control and OAuth endpoints never fail.
//   - OAuth: /oauth2/authorize approves at once for the first account (or
//     the one at index ?emulator_account=N) and redirects with code and
//     state; a code is single-use and the token request must repeat the
//     authorize request's redirect_uri exactly. Tokens do not expire and
//     work as Bearer (or "OAuth") credentials on the API.
//   - A path that exists with other methods answers 405 "Method Not
//     Allowed"; an unknown path 404. Both need a valid key first (401).
//   - Latency is the time a request takes, the emulator's own work
//     included: the change is applied when the request comes in and the
//     answer is held until Latency has passed (a caller that gives up
//     meanwhile loses the answer, not the change, as with Mailchimp over a
//     slow network). LatencyPerMember is added for every member of a batch.
//   - The connection limit counts requests in flight per account, including
//     the time spent in Latency; a request beyond MaxConns gets 429 with
//     Retry-After: 1 at once.
//
// # Memory
//
// A member is one compact struct in a slice indexed by subscriber hash:
// merge values are positional by merge-field slot (no per-member maps), tags
// are small list-local ids, and the hash is recomputed instead of stored.
// Each audience has its own RWMutex.
package emulator
