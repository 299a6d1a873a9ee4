"""How values become Temporal payloads: Temporal's JSON, written as UTF-8.

Python's `json` escapes every non-ASCII character by default (`\\u0416`: 6 bytes for a
Cyrillic letter that UTF-8 writes in 2, 12 for an emoji's surrogate pair instead of 4), and
Temporal's JSON converter keeps that default. For an email that tripled the size of every
workflow input, continue-as-new carry and activity input: the largest batch the API accepts
(512 KiB of Cyrillic HTML) became a 1.5 MB input, three quarters of Temporal's 2 MiB payload
limit. Written as UTF-8, the same input takes about what the request took.

Reading is unchanged (JSON decodes both forms), so payloads written before this change, in
recorded histories and running executions, read as before.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)


class Utf8JSONPayloadConverter(JSONPlainPayloadConverter):
    """`json/plain` as Temporal writes it (compact, sorted keys), but UTF-8, not escapes."""

    def to_payload(self, value: Any) -> Payload | None:
        return Payload(
            metadata={"encoding": self.encoding.encode()},
            data=json.dumps(
                value,
                cls=self._encoder,
                separators=(",", ":"),
                sort_keys=True,
                ensure_ascii=False,
            ).encode(),
        )


class PayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converters, with JSON written as UTF-8."""

    def __init__(self) -> None:
        super().__init__(
            *(
                Utf8JSONPayloadConverter()
                if isinstance(converter, JSONPlainPayloadConverter)
                else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
