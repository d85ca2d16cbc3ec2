-- Mailchimp's word on each profile (SPEC 12: the reserved attributes
-- mailchimp.<audience>.status and .status_changed_at) moves out of
-- profiles.attrs into a narrow table of its own (issue 15). A first run's
-- flow-back then inserts one short row per contact in customer order
-- instead of rewriting every profile row (7 s of a 1M run), and webhooks
-- and status refreshes write a few bytes. Reads that show a profile merge
-- the rows back into its attributes; segment rules read them through a
-- subquery (package segment). Deleting a profile deletes its statuses, and
-- deleting a status counts it out of the attribute catalogue.
CREATE TABLE profile_statuses (
    customer    TEXT NOT NULL, -- profiles.customer_id (named apart: rules compare it to theirs, see package segment)
    audience_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    changed_at  TEXT NOT NULL, -- RFC 3339 UTC, seconds
    PRIMARY KEY (customer, audience_id)
) WITHOUT ROWID;

INSERT INTO profile_statuses (customer, audience_id, status, changed_at)
SELECT p.customer_id, substr(j.key, 11, length(j.key) - 17), j.value,
       COALESCE(json_extract(p.attrs, '$."' || substr(j.key, 1, length(j.key) - 7) || '.status_changed_at"'), '')
FROM profiles p, json_each(p.attrs) j
WHERE j.key LIKE 'mailchimp.%.status' AND j.type = 'text'
ORDER BY p.customer_id;

UPDATE profiles SET attrs = json_patch(attrs,
    (SELECT json_group_object(j.key, json('null')) FROM json_each(profiles.attrs) j WHERE j.key LIKE 'mailchimp.%'))
WHERE attrs LIKE '%"mailchimp.%';

CREATE TRIGGER profile_statuses_of_deleted AFTER DELETE ON profiles
BEGIN
    DELETE FROM profile_statuses WHERE customer = OLD.customer_id;
END;

CREATE TRIGGER profile_statuses_deleted AFTER DELETE ON profile_statuses
BEGIN
    UPDATE profile_attributes SET profile_count = profile_count - 1
    WHERE (name = 'mailchimp.' || OLD.audience_id || '.status' AND type = 'string')
       OR (name = 'mailchimp.' || OLD.audience_id || '.status_changed_at' AND type = 'date');
    DELETE FROM profile_attributes WHERE profile_count <= 0
      AND name IN ('mailchimp.' || OLD.audience_id || '.status', 'mailchimp.' || OLD.audience_id || '.status_changed_at');
END;
