// Resend's Node SDK lists our emails: `resend.emails.list` a page at a time.
// Run by tests/test_resend_list.py with RESEND_BASE_URL and RESEND_API_KEY set; prints one
// JSON line: the first page of LIMIT emails, and the page after its last one.
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function main() {
  const limit = Number(process.env.LIMIT);
  const first = await resend.emails.list({ limit });
  const last = first.data ? first.data.data[first.data.data.length - 1] : null;
  const next = last ? await resend.emails.list({ limit, after: last.id }) : null;
  const bad = await resend.emails.list({ limit: 101 });
  console.log(JSON.stringify({ first, next, bad }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
