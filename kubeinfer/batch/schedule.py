"""Order a batch's pending requests so that requests sharing a prompt prefix run back to back.

llama-server keeps each slot's last prompt in its KV cache and picks the slot whose cached prompt is
most similar, so consecutive requests with the same system prompt skip re-evaluating it. The worker
(kubeinfer.batch.shards.shard_offsets) keeps only byte offsets in memory and reads each line again to send it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Characters of a completion prompt that decide its group.
COMPLETION_PREFIX_CHARS = 256


def prefix_key(body: Any) -> str:
    """A short hash of the part of the prompt that requests may share; "" when there is none."""
    if not isinstance(body, dict):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        first = messages[0]
        if first.get("role") in ("system", "developer"):
            text = json.dumps(first.get("content"), sort_keys=True)
            return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        return ""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return hashlib.blake2b(prompt[:COMPLETION_PREFIX_CHARS].encode(), digest_size=8).hexdigest()
    return ""
