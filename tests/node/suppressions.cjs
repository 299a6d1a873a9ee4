// Resend's Node SDK on our suppression list: add, get, list by origin, remove, get again.
// Run by tests/test_suppressions.py with RESEND_BASE_URL, RESEND_API_KEY and ADDRESS set;
// prints one JSON line with each answer.
const { Resend } = require("resend");

const resend = new Resend(process.env.RESEND_API_KEY, { baseUrl: process.env.RESEND_BASE_URL });

async function main() {
  const email = process.env.ADDRESS;
  const added = await resend.suppressions.add({ email });
  const got = await resend.suppressions.get(email);
  const listed = await resend.suppressions.list({ origin: "manual", limit: 100 });
  const removed = await resend.suppressions.remove(email);
  const gone = await resend.suppressions.get(email);
  console.log(JSON.stringify({ added, got, listed, removed, gone }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
