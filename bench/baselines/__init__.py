"""The designs our users came from, as tiny FastAPI apps with our invite endpoint.

Each module is one design from the seeds; all send through the `resend` SDK to
`RESEND_API_URL` (the fake provider in the benchmark) the way the seeds' code does.
"""
