-- The audit log is filtered by kind (the object type: segment, profile,
-- export, …), newest first. Every change to profiles is of kind profile:
-- events recorded before this migration under another object type are
-- re-typed, their old object id kept in the detail. Applied pulls
-- (profile.import on the source) name the source in source_id; erasures
-- (on the erasure) are about the customer, with the erasure's id in
-- erasure.
CREATE INDEX audit_events_kind ON audit_events (object_type, id);

UPDATE audit_events
   SET object_type = 'profile', object_id = '',
       detail = json_set(detail, '$.source_id', CAST(object_id AS INTEGER))
 WHERE action = 'profile.import' AND object_type = 'source';

UPDATE audit_events
   SET object_type = 'profile',
       object_id = COALESCE(json_extract(detail, '$.customer_id'), ''),
       detail = json_set(detail, '$.erasure', CAST(object_id AS INTEGER))
 WHERE action IN ('profile.erase', 'profile.erased') AND object_type = 'erasure';
