// Resend's Node SDK calls an API durable-mail does not serve: `{data: null, error}` with
// Resend's error, as from Resend. Run by tests/test_resend_unserved.py.
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function main() {
  const domains = await resend.domains.list();
  const contact = await resend.contacts.create({ email: "x@example.com" });
  console.log(JSON.stringify({ domains, contact }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
