// Drives the segsync Mailchimp emulator with Mailchimp's official Node client
// (@mailchimp/mailchimp_marketing 3.0.80). Reads MAILCHIMP_API_URL and
// MAILCHIMP_API_KEY; prints one "ok" line per step and exits non-zero on the
// first failure. Run by conformance/node_test.go.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const mailchimp = require('@mailchimp/mailchimp_marketing');

const apiURL = process.env.MAILCHIMP_API_URL;
const apiKey = process.env.MAILCHIMP_API_KEY;
if (!apiURL || !apiKey) {
  console.error('MAILCHIMP_API_URL and MAILCHIMP_API_KEY must be set');
  process.exit(2);
}

// The client builds basePath + path and replaces the word "server" with
// config.server; leaving server unset keeps the emulator's URL intact.
mailchimp.basePath = apiURL;
mailchimp.setConfig({ apiKey });

const hash = (email) => crypto.createHash('md5').update(email.toLowerCase()).digest('hex');

// refused runs fn and expects a Mailchimp problem document with this status
// and title; it returns the document.
async function refused(fn, status, title) {
  try {
    await fn();
  } catch (err) {
    assert.equal(err.status, status, `status of ${title}: ${err.status} ${err.message}`);
    const doc = err.response && err.response.body;
    assert.ok(doc && typeof doc === 'object', `problem document for ${title}`);
    assert.equal(doc.title, title);
    assert.equal(doc.status, status);
    assert.ok(doc.type && doc.detail && doc.instance, 'problem document fields');
    return doc;
  }
  assert.fail(`expected ${status} ${title}, got success`);
}

// control plays a recipient's own action through the emulator's control endpoint.
async function control(listId, email, action) {
  const root = apiURL.replace(/\/3\.0$/, '');
  const res = await fetch(`${root}/_emulator/lists/${listId}/members/${hash(email)}/${action}`, {
    method: 'POST',
    headers: { Authorization: 'Basic ' + Buffer.from('anystring:' + apiKey).toString('base64') },
  });
  assert.equal(res.status, 200, `control ${action}`);
}

const steps = [];
const step = (name, fn) => steps.push([name, fn]);
const state = {};

step('ping', async () => {
  const res = await mailchimp.ping.get();
  assert.equal(res.health_status, "Everything's Chimpy!");
});

step('root', async () => {
  const res = await mailchimp.root.getRoot();
  assert.ok(res.account_id && res.account_name);
});

step('wrong key is refused', async () => {
  mailchimp.setConfig({ apiKey: '0123456789abcdef0123456789abcdef-us1' });
  try {
    await refused(() => mailchimp.ping.get(), 401, 'API Key Invalid');
  } finally {
    mailchimp.setConfig({ apiKey });
  }
});

step('create audience', async () => {
  const list = await mailchimp.lists.createList({
    name: 'Node conformance',
    contact: { company: 'Acme', address1: '1 Main St', city: 'Springfield', state: 'IL', zip: '62701', country: 'US' },
    permission_reminder: 'You signed up on our site.',
    campaign_defaults: { from_name: 'Acme', from_email: 'news@acme.io', subject: 'News', language: 'en' },
    email_type_option: false,
  });
  assert.match(list.id, /^[0-9a-f]{10}$/);
  state.list = list.id;
  const got = await mailchimp.lists.getList(list.id);
  assert.equal(got.name, 'Node conformance');
  const all = await mailchimp.lists.getAllLists({ count: 100 });
  assert.ok(all.lists.some((l) => l.id === list.id));
});

step('audience needs its required fields', async () => {
  const doc = await refused(() => mailchimp.lists.createList({ name: 'Incomplete' }), 400, 'Invalid Resource');
  assert.ok(Array.isArray(doc.errors) && doc.errors.length > 0);
});

step('merge fields', async () => {
  const mf = await mailchimp.lists.addListMergeField(state.list, { name: 'Lifetime value', type: 'number', tag: 'LTV' });
  assert.equal(mf.tag, 'LTV');
  assert.equal(mf.type, 'number');
  await mailchimp.lists.addListMergeField(state.list, { name: 'Signed up', type: 'date', tag: 'SIGNUP' });
  const tmp = await mailchimp.lists.addListMergeField(state.list, { name: 'Temporary', type: 'text', tag: 'TMP' });
  await mailchimp.lists.updateListMergeField(state.list, tmp.merge_id, { name: 'Temporary field' });
  await mailchimp.lists.deleteListMergeField(state.list, tmp.merge_id);
  const fields = await mailchimp.lists.getListMergeFields(state.list, { count: 100 });
  const tags = fields.merge_fields.map((f) => f.tag).sort();
  assert.deepEqual(tags, ['ADDRESS', 'FNAME', 'LNAME', 'LTV', 'PHONE', 'SIGNUP']);
});

step('add member', async () => {
  const m = await mailchimp.lists.addListMember(state.list, {
    email_address: 'Ann@Acme.io', status: 'subscribed',
    merge_fields: { FNAME: 'Ann', LTV: 12.5, SIGNUP: '2024-02-29' }, tags: ['Early'],
  });
  assert.equal(m.id, hash('ann@acme.io'));
  assert.equal(m.status, 'subscribed');
  assert.equal(m.merge_fields.FNAME, 'Ann');
  assert.equal(m.merge_fields.LTV, 12.5);
  assert.equal(m.tags_count, 1);
  assert.equal(m.tags[0].name, 'Early');
  assert.ok(m.last_changed);
});

step('add existing member is refused', async () => {
  await refused(() => mailchimp.lists.addListMember(state.list, { email_address: 'ann@acme.io', status: 'subscribed' }), 400, 'Member Exists');
});

step('set member (upsert)', async () => {
  const m = await mailchimp.lists.setListMember(state.list, hash('bob@acme.io'), {
    email_address: 'bob@acme.io', status_if_new: 'subscribed', merge_fields: { FNAME: 'Bob' },
  });
  assert.equal(m.status, 'subscribed');
  await mailchimp.lists.updateListMember(state.list, hash('bob@acme.io'), { status: 'unsubscribed' });
  // status_if_new does not touch an existing contact.
  const again = await mailchimp.lists.setListMember(state.list, hash('bob@acme.io'), {
    email_address: 'bob@acme.io', status_if_new: 'subscribed', merge_fields: { LNAME: 'Builder' },
  });
  assert.equal(again.status, 'unsubscribed');
  assert.equal(again.merge_fields.LNAME, 'Builder');
  assert.equal(again.full_name, 'Bob Builder');
});

step('update member', async () => {
  const m = await mailchimp.lists.updateListMember(state.list, hash('bob@acme.io'), { merge_fields: { LTV: 3 } });
  assert.equal(m.status, 'unsubscribed');
  assert.equal(m.merge_fields.LTV, 3);
  // Unsubscribed through the API: may be re-subscribed through the API.
  const back = await mailchimp.lists.updateListMember(state.list, hash('bob@acme.io'), { status: 'subscribed' });
  assert.equal(back.status, 'subscribed');
  const got = await mailchimp.lists.getListMember(state.list, 'bob@acme.io');
  assert.equal(got.email_address, 'bob@acme.io');
});

step('invalid merge values are refused with errors', async () => {
  const doc = await refused(() => mailchimp.lists.setListMember(state.list, hash('cy@acme.io'), {
    email_address: 'cy@acme.io', status_if_new: 'subscribed', merge_fields: { LTV: 'lots' },
  }), 400, 'Invalid Resource');
  assert.equal(doc.errors[0].field, 'LTV');
  const unknown = await refused(() => mailchimp.lists.setListMember(state.list, hash('cy@acme.io'), {
    email_address: 'cy@acme.io', status_if_new: 'subscribed', merge_fields: { NOPE: 'x' },
  }), 400, 'Invalid Resource');
  assert.equal(unknown.errors[0].field, 'NOPE');
});

step('fake and malformed addresses are refused', async () => {
  for (const email of ['someone@example.com', 'test@acme.io', 'not an address']) {
    const doc = await refused(() => mailchimp.lists.addListMember(state.list, { email_address: email, status: 'subscribed' }), 400, 'Invalid Resource');
    assert.match(doc.detail, /looks fake or invalid/);
  }
});

step('batch subscribe', async () => {
  const res = await mailchimp.lists.batchListMembers(state.list, {
    update_existing: false,
    members: [
      { email_address: 'cy@acme.io', status: 'subscribed', merge_fields: { FNAME: 'Cy' } },
      { email_address: 'dee@acme.io', status: 'pending' },
      { email_address: 'ann@acme.io', status: 'unsubscribed' },
      { email_address: 'eve@example.com', status: 'subscribed' },
    ],
  });
  assert.equal(res.total_created, 2);
  assert.equal(res.total_updated, 0);
  assert.equal(res.error_count, 2);
  const codes = Object.fromEntries(res.errors.map((e) => [e.email_address, e.error_code]));
  assert.deepEqual(codes, { 'ann@acme.io': 'ERROR_CONTACT_EXISTS', 'eve@example.com': 'ERROR_GENERIC' });
  const ann = await mailchimp.lists.getListMember(state.list, hash('ann@acme.io'));
  assert.equal(ann.status, 'subscribed', 'update_existing false leaves the contact alone');

  const upd = await mailchimp.lists.batchListMembers(state.list, {
    update_existing: true,
    members: [{ email_address: 'dee@acme.io', status: 'subscribed', merge_fields: { FNAME: 'Dee' } }],
  });
  assert.equal(upd.total_updated, 1);
  assert.equal(upd.updated_members[0].status, 'subscribed', 'update_existing moves pending contacts');
});

step('batch subscribe without status is refused', async () => {
  await refused(() => mailchimp.lists.batchListMembers(state.list, { members: [{ email_address: 'fay@acme.io' }] }), 400, 'Invalid Resource');
});

step('compliance state', async () => {
  await control(state.list, 'ann@acme.io', 'unsubscribe');
  const ann = await mailchimp.lists.getListMember(state.list, hash('ann@acme.io'));
  assert.equal(ann.status, 'unsubscribed');
  await refused(() => mailchimp.lists.updateListMember(state.list, hash('ann@acme.io'), { status: 'subscribed' }), 400, 'Member In Compliance State');
  await refused(() => mailchimp.lists.setListMember(state.list, hash('ann@acme.io'), {
    email_address: 'ann@acme.io', status_if_new: 'subscribed', status: 'subscribed',
  }), 400, 'Member In Compliance State');
  const res = await mailchimp.lists.batchListMembers(state.list, {
    update_existing: true, members: [{ email_address: 'ann@acme.io', status: 'subscribed' }],
  });
  assert.equal(res.error_count, 1);
  assert.match(res.errors[0].error, /compliance state/);
  await control(state.list, 'cy@acme.io', 'bounce');
  const cy = await mailchimp.lists.getListMember(state.list, hash('cy@acme.io'));
  assert.equal(cy.status, 'cleaned');
  await refused(() => mailchimp.lists.updateListMember(state.list, hash('cy@acme.io'), { status: 'subscribed' }), 400, 'Member In Compliance State');
});

step('member tags', async () => {
  await mailchimp.lists.updateListMemberTags(state.list, hash('bob@acme.io'), {
    tags: [{ name: 'VIP', status: 'active' }, { name: 'Early', status: 'active' }],
  });
  await mailchimp.lists.updateListMemberTags(state.list, hash('bob@acme.io'), { tags: [{ name: 'Early', status: 'inactive' }] });
  const res = await mailchimp.lists.getListMemberTags(state.list, hash('bob@acme.io'));
  assert.deepEqual(res.tags.map((t) => t.name), ['VIP']);
  const found = await mailchimp.lists.tagSearch(state.list, { name: 'vi' });
  assert.deepEqual(found.tags.map((t) => t.name), ['VIP']);
});

step('static segments', async () => {
  const seg = await mailchimp.lists.createSegment(state.list, { name: 'Customers', static_segment: [] });
  assert.equal(seg.type, 'static');
  const res = await mailchimp.lists.batchSegmentMembers(
    { members_to_add: ['bob@acme.io', 'dee@acme.io', 'nobody@acme.io'], members_to_remove: [] }, state.list, seg.id);
  assert.equal(res.total_added, 2);
  assert.equal(res.error_count, 1);
  const rem = await mailchimp.lists.batchSegmentMembers({ members_to_add: [], members_to_remove: ['dee@acme.io'] }, state.list, seg.id);
  assert.equal(rem.total_removed, 1);
  const members = await mailchimp.lists.getSegmentMembersList(state.list, seg.id);
  assert.deepEqual(members.members.map((m) => m.email_address), ['bob@acme.io']);
  const got = await mailchimp.lists.getSegment(state.list, seg.id);
  assert.equal(got.member_count, 1);
  const list = await mailchimp.lists.listSegments(state.list, { type: 'static' });
  assert.ok(list.segments.some((s) => s.name === 'Customers'));
  const tooMany = Array.from({ length: 501 }, (_, i) => `p${i}@acme.io`);
  await refused(() => mailchimp.lists.batchSegmentMembers({ members_to_add: tooMany, members_to_remove: [] }, state.list, seg.id), 400, 'Invalid Resource');
});

step('members listing', async () => {
  const all = await mailchimp.lists.getListMembersInfo(state.list, { count: 1000 });
  assert.equal(all.total_items, 4);
  const subs = await mailchimp.lists.getListMembersInfo(state.list, { status: 'subscribed', fields: ['members.email_address', 'total_items'] });
  assert.deepEqual(subs.members.map((m) => m.email_address).sort(), ['bob@acme.io', 'dee@acme.io']);
  assert.deepEqual(Object.keys(subs.members[0]), ['email_address']);
  const later = await mailchimp.lists.getListMembersInfo(state.list, { sinceLastChanged: '2999-01-01T00:00:00+00:00' });
  assert.equal(later.total_items, 0);
});

step('archive', async () => {
  await mailchimp.lists.deleteListMember(state.list, hash('dee@acme.io'));
  const dee = await mailchimp.lists.getListMember(state.list, hash('dee@acme.io'));
  assert.equal(dee.status, 'archived');
  await refused(() => mailchimp.lists.deleteListMember(state.list, hash('dee@acme.io')), 405, 'Method Not Allowed');
  const archived = await mailchimp.lists.getListMembersInfo(state.list, { status: 'archived' });
  assert.deepEqual(archived.members.map((m) => m.email_address), ['dee@acme.io']);
});

step('permanent delete', async () => {
  await mailchimp.lists.deleteListMemberPermanent(state.list, hash('bob@acme.io'));
  await refused(() => mailchimp.lists.getListMember(state.list, hash('bob@acme.io')), 404, 'Resource Not Found');
  await refused(() => mailchimp.lists.setListMember(state.list, hash('bob@acme.io'), {
    email_address: 'bob@acme.io', status_if_new: 'subscribed',
  }), 400, 'Forgotten Email Not Subscribed');
});

step('audience stats', async () => {
  const list = await mailchimp.lists.getList(state.list);
  assert.equal(list.stats.member_count, 0);
  assert.equal(list.stats.unsubscribe_count, 1);
  assert.equal(list.stats.cleaned_count, 1);
  console.log(`LIST_ID=${state.list}`);
});

(async () => {
  for (const [name, fn] of steps) {
    try {
      await fn();
      console.log(`ok ${name}`);
    } catch (err) {
      const body = err.response && err.response.body ? JSON.stringify(err.response.body) : '';
      console.error(`FAIL ${name}: ${err.stack || err} ${body}`);
      process.exit(1);
    }
  }
})();
