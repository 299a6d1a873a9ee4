// Resend's Node SDK on our suppression list, many at once: batch.add, batch.remove by
// emails and by ids. Run by tests/test_suppressions_batch.py with RESEND_BASE_URL,
// RESEND_API_KEY and ADDRESSES (comma-separated) set; prints one JSON line with each answer.
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function main() {
  const emails = process.env.ADDRESSES.split(",");
  const added = await resend.suppressions.batch.add({ emails });
  const ids = added.data ? added.data.data.map((entry) => entry.id) : [];
  const byEmails = await resend.suppressions.batch.remove({ emails: [emails[0]] });
  const byIds = await resend.suppressions.batch.remove({ ids: ids.slice(1) });
  const listed = await resend.suppressions.list({ limit: 100 });
  const empty = await resend.suppressions.batch.add({ emails: [] });
  console.log(JSON.stringify({ added, byEmails, byIds, listed, empty }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
