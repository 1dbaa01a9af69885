"""From a CSV to a batch to a pandas table: each review's sentiment next to its row.

    KUBEINFER_GATEWAY__API_KEYS="sk-team-a=team-a" kubeinfer gateway serve --port 8080 &
    export OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=sk-team-a
    python examples/csv_to_pandas.py examples/reviews.csv     # needs pandas (pip install pandas)

The requests are built by the same code as `kubeinfer batch from-csv`; the batch runs through the official
`openai` client, so any OpenAI-compatible endpoint works.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pandas as pd
from openai import OpenAI

from kubeinfer.batch.tools import csv_requests

TEMPLATE = "Answer with one word, positive, negative or neutral. Sentiment of: {review}"
ENDED = ("completed", "failed", "cancelled", "expired")


def main(csv_path: Path, model: str = "smollm2-135m") -> pd.DataFrame:
    with csv_path.open(newline="") as rows:
        requests = list(csv_requests(rows, TEMPLATE, model, max_tokens=4, id_column="id"))
    client = OpenAI()
    data = "".join(json.dumps(request) + "\n" for request in requests).encode()
    upload = client.files.create(file=(csv_path.with_suffix(".jsonl").name, io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    while (batch := client.batches.retrieve(batch.id)).status not in ENDED:
        time.sleep(1)
    if batch.status != "completed" or not batch.output_file_id:
        raise SystemExit(f"batch {batch.id} ended {batch.status}")
    answers = {}
    for line in client.files.content(batch.output_file_id).text.splitlines():
        result = json.loads(line)
        body = result["response"]["body"]
        answers[result["custom_id"]] = body["choices"][0]["message"]["content"].strip()
    table = pd.read_csv(csv_path)
    table["sentiment"] = table["id"].map(answers)
    return table


if __name__ == "__main__":
    frame = main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/reviews.csv"))
    print(frame.to_string(index=False))
