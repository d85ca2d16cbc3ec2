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
       detail = detail || jsonb_build_object('source_id', object_id::bigint)
 WHERE action = 'profile.import' AND object_type = 'source';

UPDATE audit_events
   SET object_type = 'profile',
       object_id = COALESCE(detail->>'customer_id', ''),
       detail = detail || jsonb_build_object('erasure', object_id::bigint)
 WHERE action IN ('profile.erase', 'profile.erased') AND object_type = 'erasure';
