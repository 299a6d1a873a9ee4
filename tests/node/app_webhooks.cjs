// Resend's Node SDK against durable-mail's webhook endpoints API and our signed events.
// Run by tests/test_app_webhooks.py with RESEND_BASE_URL and RESEND_API_KEY set.
// `create ENDPOINT`: creates a webhook for email.sent and email.delivered, prints
// {created, got, list}. `verify`: reads {payload, headers, secret} as JSON on stdin and
// prints what `resend.webhooks.verify` returns (or {error}).
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function create(endpoint) {
  const created = await resend.webhooks.create({
    endpoint,
    events: ["email.sent", "email.delivered"],
  });
  const got = created.data ? await resend.webhooks.get(created.data.id) : null;
  const list = await resend.webhooks.list();
  return { created, got, list };
}

async function verify() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { payload, headers, secret } = JSON.parse(Buffer.concat(chunks).toString());
  try {
    return { event: resend.webhooks.verify({ payload, headers, webhookSecret: secret }) };
  } catch (err) {
    return { error: String(err) };
  }
}

async function main() {
  const [mode, arg] = process.argv.slice(2);
  const answer = mode === "create" ? await create(arg) : await verify();
  console.log(JSON.stringify(answer));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
