"""A three-line batch through the gateway with the official `openai` client (docs/kind.md).

Reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment (`eval "$(make -s kind-up | tail -3)"`).
"""

import io
import json
import time

from openai import OpenAI

client = OpenAI()
model = client.models.list().data[0].id
reviews = ["Great phone", "Broke after a day", "Does the job"]
lines = [
    {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": f"Sentiment of: {text}"}]},
    }
    for i, text in enumerate(reviews)
]
data = "\n".join(json.dumps(line) for line in lines).encode()
upload = client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch")
batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
while (batch := client.batches.retrieve(batch.id)).status not in ("completed", "failed", "cancelled", "expired"):
    time.sleep(2)
print(batch.status, batch.request_counts)
if batch.output_file_id:
    print(client.files.content(batch.output_file_id).text)
