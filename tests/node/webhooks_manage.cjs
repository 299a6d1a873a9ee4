// Resend's Node SDK on webhook endpoints and their events: create, update, rotate the
// signing secret, list the events sent to it, get one, its attempts, replay it, remove the
// endpoint. Run by tests/test_webhook_events.py with RESEND_BASE_URL, RESEND_API_KEY and
// ENDPOINT set; MODE=create creates, else the rest on WEBHOOK_ID; one JSON line out.
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function create() {
  const created = await resend.webhooks.create({
    endpoint: process.env.ENDPOINT,
    events: ["email.sent"],
  });
  return { created };
}

async function manage() {
  const webhookId = process.env.WEBHOOK_ID;
  const listed = await resend.webhooks.events.list({ webhookId, limit: 10 });
  const eventId = listed.data && listed.data.data[0] && listed.data.data[0].id;
  const got = await resend.webhooks.events.get({ webhookId, eventId });
  const attempts = await resend.webhooks.events.attempts.list({ webhookId, eventId });
  const replayed = await resend.webhooks.events.replay({ webhookId, eventId });
  const updated = await resend.webhooks.update(webhookId, {
    events: ["email.sent", "email.delivered"],
    status: "disabled",
  });
  const afterUpdate = await resend.webhooks.get(webhookId);
  const rotated = await resend.webhooks.rotateSigningSecret(webhookId);
  const removed = await resend.webhooks.remove(webhookId);
  const gone = await resend.webhooks.get(webhookId);
  return { listed, got, attempts, replayed, updated, afterUpdate, rotated, removed, gone };
}

(process.env.MODE === "create" ? create() : manage())
  .then((answers) => console.log(JSON.stringify(answers)))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
