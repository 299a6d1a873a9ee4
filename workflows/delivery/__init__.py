"""The delivery engine: one loop for every provider call (1 to 100 messages), written once.

- `loop`: `ProviderCall`, the due wait, attempts with backoff and Retry-After, the send
  window, honest endings, continue-as-new (every workflow's call derives from it).
- `email`: `Delivery`, one email's call (`SendEmail`, an invite's invitation and reminder):
  cancel, reschedule, delivery events, the wait for them, its carry.
- `attempts`: what a failed attempt was (from the transport's capability fields).
- `endings`: how an unsent call ends (`failed` or `undetermined`), in our own words.
- `events`: delivery events, one dedupe rule for every workflow.
- `history`: the history budget, keeping the first and the latest of a list, timers.
- `labels`: what the Web UI shows (attempt summaries, current details).
- `handlers`: the queries, signals and updates of a one-email workflow.
"""
