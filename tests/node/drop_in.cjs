// Resend's Node SDK, unchanged, against durable-mail: the base URL is the only change.
// Run by tests/test_resend_compat.py with RESEND_BASE_URL, RESEND_API_KEY and TO set;
// prints one JSON line of what the SDK answered ({data, error} per call).
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function main() {
  const params = {
    from: "Acme <invites@acme.example>",
    to: [process.env.TO],
    subject: "Welcome from Node",
    html: "<p>Welcome</p>",
  };
  const key = `welcome-node/${process.env.TO}`;
  const first = await resend.emails.send(params, { idempotencyKey: key });
  const again = await resend.emails.send(params, { idempotencyKey: key });
  const invalid = await resend.emails.send({ ...params, to: ["not-an-address"] });
  const got = first.data ? await resend.emails.get(first.data.id) : null;
  console.log(JSON.stringify({ first, again, invalid, got }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
