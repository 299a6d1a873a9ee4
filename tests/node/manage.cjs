// Resend's Node SDK, the calls a ported app makes after sending: reschedule and cancel a
// scheduled email, send a batch, and manage a webhook endpoint (update, rotate its secret,
// remove). Run by tests/test_node_sdk_calls.py with RESEND_BASE_URL, RESEND_API_KEY, TO and
// ENDPOINT set; prints one JSON line with each answer ({data, error} per call).
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function emails(to) {
  const base = { from: "Acme <invites@acme.example>", to: [to], html: "<p>Hi</p>" };
  const scheduled = await resend.emails.send({ ...base, subject: "Later", scheduledAt: "in 1 hour" });
  const id = scheduled.data ? scheduled.data.id : "missing";
  const later = new Date(Date.now() + 2 * 3600 * 1000).toISOString();
  const updated = await resend.emails.update({ id, scheduledAt: later });
  const afterUpdate = await resend.emails.get(id);
  const canceled = await resend.emails.cancel(id);
  const afterCancel = await resend.emails.get(id);
  const batch = await resend.batch.send([
    { ...base, subject: "One" },
    { ...base, subject: "Two" },
  ]);
  return { scheduled, later, updated, afterUpdate, canceled, afterCancel, batch };
}

async function webhooks(endpoint) {
  const created = await resend.webhooks.create({ endpoint, events: ["email.sent"] });
  const id = created.data ? created.data.id : "missing";
  const updated = await resend.webhooks.update(id, {
    endpoint: `${endpoint}/v2`,
    events: ["email.sent", "email.bounced"],
    status: "disabled",
  });
  const afterUpdate = await resend.webhooks.get(id);
  const rotated = await resend.webhooks.rotateSigningSecret(id);
  const removed = await resend.webhooks.remove(id);
  const afterRemove = await resend.webhooks.get(id);
  return { created, updated, afterUpdate, rotated, removed, afterRemove };
}

async function main() {
  const answers = {
    emails: await emails(process.env.TO),
    webhooks: await webhooks(process.env.ENDPOINT),
  };
  console.log(JSON.stringify(answers));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
