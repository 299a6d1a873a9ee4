// Resend's Node SDK: schedule an email, reschedule it (emails.update), cancel it
// (emails.cancel), and send a batch (batch.send). Run by tests/test_node_sdk_calls.py with
// RESEND_BASE_URL, RESEND_API_KEY, TO, AT and LATER set; prints one JSON line of the answers.
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function main() {
  const base = { from: "Acme <invites@acme.example>", subject: "Hi from Node", html: "<p>hi</p>" };
  const to = process.env.TO;
  const scheduled = await resend.emails.send({ ...base, to: [to], scheduledAt: process.env.AT });
  const id = scheduled.data && scheduled.data.id;
  const updated = await resend.emails.update({ id, scheduledAt: process.env.LATER });
  const afterUpdate = await resend.emails.get(id);
  const canceled = await resend.emails.cancel(id);
  const afterCancel = await resend.emails.get(id);
  const batch = await resend.batch.send([
    { ...base, to: [`one-${to}`] },
    { ...base, to: [`two-${to}`] },
  ]);
  console.log(JSON.stringify({ scheduled, updated, afterUpdate, canceled, afterCancel, batch }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
