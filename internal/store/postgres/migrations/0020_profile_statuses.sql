-- Mailchimp's word on each profile (SPEC 12: the reserved attributes
-- mailchimp.<audience>.status and .status_changed_at) moves out of
-- profiles.attrs into a narrow table of its own (issue 15). A first run's
-- flow-back then inserts one short row per contact in customer order
-- instead of rewriting every profile row, and webhooks and status
-- refreshes write a few bytes. Reads that show a profile merge the rows
-- back into its attributes; segment rules read them through a subquery
-- (package segment). Deleting a profile deletes its statuses, and deleting
-- a status counts it out of the attribute catalogue.
CREATE TABLE profile_statuses (
    customer    TEXT COLLATE "C" NOT NULL, -- profiles.customer_id (named apart: rules compare it to theirs, see package segment)
    audience_id TEXT COLLATE "C" NOT NULL,
    status      TEXT NOT NULL,
    changed_at  TEXT NOT NULL, -- RFC 3339 UTC, seconds
    PRIMARY KEY (customer, audience_id)
);

INSERT INTO profile_statuses (customer, audience_id, status, changed_at)
SELECT p.customer_id, substr(j.key, 11, length(j.key) - 17), j.value #>> '{}',
       COALESCE(p.attrs ->> (substr(j.key, 1, length(j.key) - 7) || '.status_changed_at'), '')
FROM profiles p, jsonb_each(p.attrs) j
WHERE j.key LIKE 'mailchimp.%.status' AND jsonb_typeof(j.value) = 'string';

UPDATE profiles SET attrs = attrs - ARRAY(SELECT k FROM jsonb_object_keys(attrs) k WHERE k LIKE 'mailchimp.%')
WHERE EXISTS (SELECT 1 FROM jsonb_object_keys(attrs) k WHERE k LIKE 'mailchimp.%');

CREATE FUNCTION segsync_delete_profile_statuses() RETURNS trigger
LANGUAGE plpgsql AS $del$
BEGIN
    DELETE FROM profile_statuses WHERE customer = OLD.customer_id;
    RETURN NULL;
END
$del$;
CREATE TRIGGER profile_statuses_of_deleted AFTER DELETE ON profiles
FOR EACH ROW EXECUTE FUNCTION segsync_delete_profile_statuses();

CREATE FUNCTION segsync_uncount_profile_status() RETURNS trigger
LANGUAGE plpgsql AS $uncount$
BEGIN
    UPDATE profile_attributes SET profile_count = profile_count - 1
    WHERE (name = 'mailchimp.' || OLD.audience_id || '.status' AND type = 'string')
       OR (name = 'mailchimp.' || OLD.audience_id || '.status_changed_at' AND type = 'date');
    DELETE FROM profile_attributes WHERE profile_count <= 0
      AND name IN ('mailchimp.' || OLD.audience_id || '.status', 'mailchimp.' || OLD.audience_id || '.status_changed_at');
    RETURN NULL;
END
$uncount$;
CREATE TRIGGER profile_statuses_deleted AFTER DELETE ON profile_statuses
FOR EACH ROW EXECUTE FUNCTION segsync_uncount_profile_status();
