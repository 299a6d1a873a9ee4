"""The secrets of a test stack: made up here, once per process, and handed to the processes it
starts through their environment. None of them works anywhere else."""

from __future__ import annotations

import base64
from typing import Final

from infra.codec import new_codec_key

# The fake Resend's bearer key (unless told otherwise), the one our worker sends it.
FAKE_KEY: Final = "re_test_key"
# Operator keys of the API under test (API_KEYS): two at once, as during a rotation.
API_KEY: Final = "dm_test_key_current"
API_KEY_PREVIOUS: Final = "dm_test_key_previous"
# Tenant keys (TENANTS): acme is rotating (its previous key is configured as a digest).
ACME_KEY: Final = "dm_test_acme_current"
ACME_KEY_PREVIOUS: Final = "dm_test_acme_previous"
GLOBEX_KEY: Final = "dm_test_globex_key"
# The Web UI's codec capability (CODEC_UI_SECRET).
CODEC_UI_SECRET: Final = "test-codec-ui-capability-0123456789"
# The newest codec key first (encrypts); the older one still decrypts.
CODEC_KEYS: Final = f"{new_codec_key('test-2')},{new_codec_key('test-1')}"
WEBHOOK_SECRET: Final = "whsec_" + base64.b64encode(b"durable-mail-test-webhook-secret").decode()
# Derives managed invite tokens (API and worker).
INVITE_TOKEN_SECRET: Final = "test-invite-token-secret-0123456789abcdef"
