"""Where an email goes: one provider per module (`resend`, `outbox`), one contract (`base`)."""
