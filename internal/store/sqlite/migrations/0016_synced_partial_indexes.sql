-- Two small indexes over the few synced rows that runs look for among
-- millions (issue 15): contacts in the audience whose status is not
-- subscribed (SyncedOtherStatus: a run lists subscribed members changed
-- since its last refresh only when there are any), and contacts whose
-- status the profile does not show yet (FlowStatuses). Both read the whole
-- table otherwise, on every run. A row enters and leaves them only when
-- its status does; the predicates match the queries term by term.
CREATE INDEX synced_other_status ON synced (export_id) WHERE in_audience AND status <> 'subscribed';
CREATE INDEX synced_flow_due ON synced (export_id, hash) WHERE customer_id <> '' AND status <> 'creating'
    AND ((in_audience AND status <> '') OR (NOT in_audience AND profile_status <> ''))
    AND CASE WHEN in_audience THEN status ELSE 'deleted' END <> profile_status;
