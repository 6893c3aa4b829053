"""The official Python `openai` SDK, unchanged but for base_url `{worker}/openai/v1` and the
edgebatch token as its api_key, against the Worker: the realtime pattern users start from
(AsyncOpenAI + asyncio.Semaphore(10) + asyncio.gather, the SDK's own retries off), a streamed
completion with its usage, and a Batch API round trip through the Files API.

Run by worker/test/python-sdk.test.mjs in the venv scripts/setup.sh makes (.tools/venv).
Job (JSON, argv[1]): { worker, token, mode: "realtime" | "stream" | "batch", n?, model }.
Prints one JSON line with what it saw; the test asserts on it.
"""
import asyncio
import json
import sys
import time

import openai
from openai import AsyncOpenAI


def ask(model, i, max_tokens=16):
    return {
        "model": model,
        "max_completion_tokens": max_tokens,
        "messages": [{"role": "user", "content": f"Summarize document {i}: notes on shipping."}],
    }


def failure(err):
    """An exception as the test reports it: class, status and the start of the body."""
    status = getattr(err, "status_code", None)
    return f"{type(err).__name__} {status or ''} {str(err)[:200]}".strip()


async def realtime(client, job):
    sem = asyncio.Semaphore(10)

    async def one(i):
        async with sem:
            return await client.chat.completions.create(**ask(job["model"], i))

    results = await asyncio.gather(*(one(i) for i in range(job["n"])), return_exceptions=True)
    ok, errors = 0, []
    for r in results:
        if isinstance(r, BaseException):
            errors.append(failure(r))
        elif r.object == "chat.completion" and r.choices[0].message.content and r.usage.completion_tokens > 0:
            ok += 1
        else:
            errors.append(f"unexpected reply {r.model_dump_json()[:200]}")
    return {"ok": ok, "errors": errors}


async def stream(client, job):
    chunks = await client.chat.completions.create(
        **ask(job["model"], 1, 64), stream=True, stream_options={"include_usage": True}
    )
    objects, text, finish, usage_at = set(), "", None, []
    async for chunk in chunks:
        objects.add(chunk.object)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        usage_at.append(chunk.usage.model_dump() if chunk.usage else None)
    # The same prompt unstreamed: the simulator's reply depends only on the prompt.
    whole = await client.chat.completions.create(**ask(job["model"], 1, 64))
    return {
        "objects": sorted(objects),
        "chunks": len(usage_at),
        "text": text,
        "wholeText": whole.choices[0].message.content,
        "finishReason": finish,
        # Where usage came: only the last chunk carries it.
        "usageIndexes": [i for i, u in enumerate(usage_at) if u is not None],
        "usage": usage_at[-1],
    }


def content(line):
    """The reply's text in one output line, or None when the line has none."""
    try:
        return line["response"]["body"]["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None


async def batch(client, job):
    lines = [
        json.dumps({"custom_id": f"py{i}", "method": "POST", "url": "/v1/chat/completions", "body": ask(job["model"], i)})
        for i in range(job["n"])
    ]
    upload = await client.files.create(file=("requests.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch")
    created = await client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    b = created
    deadline = time.time() + 30
    while b.status not in ("completed", "failed", "expired", "cancelled"):
        if time.time() > deadline:
            raise TimeoutError(f"batch {b.id} still {b.status}: {b.request_counts}")
        await asyncio.sleep(0.2)
        b = await client.batches.retrieve(created.id)
    out = (await client.files.content(b.output_file_id)).text if b.output_file_id else ""
    results = [json.loads(line) for line in out.splitlines() if line]
    return {
        "fileId": upload.id,
        "filePurpose": upload.purpose,
        "createdStatus": created.status,
        "status": b.status,
        "counts": b.request_counts.model_dump(),
        "errorFileId": b.error_file_id,
        # [custom_id, status_code, the reply's content] for each output line, in file order.
        "results": [[r["custom_id"], (r.get("response") or {}).get("status_code"), content(r)] for r in results],
    }


async def main(job):
    client = AsyncOpenAI(base_url=f"{job['worker']}/openai/v1", api_key=job["token"], max_retries=0)
    try:
        modes = {"realtime": realtime, "stream": stream, "batch": batch}
        out = await modes[job["mode"]](client, job)
    finally:
        await client.close()
    out["sdk"] = openai.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
