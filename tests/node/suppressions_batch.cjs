// Resend's Node SDK on suppressions.batch: add two addresses (one twice), then remove them
// by address and one unknown. Run by tests/test_suppressions_batch.py with RESEND_BASE_URL,
// RESEND_API_KEY, FIRST and SECOND set; prints one JSON line with each answer.
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function main() {
  const emails = [process.env.FIRST, process.env.SECOND, process.env.FIRST];
  const added = await resend.suppressions.batch.add({ emails });
  const listed = await resend.suppressions.list({ limit: 100 });
  const removed = await resend.suppressions.batch.remove({
    emails: [process.env.FIRST, process.env.SECOND, "never-listed@example.com"],
  });
  const gone = await resend.suppressions.get(process.env.FIRST);
  console.log(JSON.stringify({ added, listed, removed, gone }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
