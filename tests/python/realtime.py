"""The official Python SDK, unchanged, against the Worker's {worker}/anthropic: the pattern
users start from (AsyncAnthropic + asyncio.Semaphore(10) + asyncio.gather, the SDK's own
retries off), a streamed message, and a Message Batches round trip.

Run by worker/test/python-sdk.test.mjs in the venv scripts/setup.sh makes (.tools/venv).
Job (JSON, argv[1]): { worker, token, mode: "realtime" | "stream" | "batch", n?, model }.
Prints one JSON line with what it saw; the test asserts on it.

Mode "bench" (bench/sdk-realtime.mjs, not the test): the realtime pattern, every call timed,
against `baseUrl` if given (the simulator directly) instead of `{worker}/anthropic`. With `rate`
(calls/s) the calls start on a fixed schedule instead of all at once (still through the
Semaphore(10)); with `go`, prints READY once the SDK is loaded and waits for a line on stdin, so
that N processes start together. Prints { calls: [[startMs, ms, status]], ok }: status 200, the
HTTP status of an APIStatusError, or the class name of any other exception.
"""
import asyncio
import json
import sys
import time

import anthropic
from anthropic import AsyncAnthropic


def ask(model, i, max_tokens=16):
    return {
        "model": model,
        "max_tokens": max_tokens,
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
            return await client.messages.create(**ask(job["model"], i))

    started = time.time()
    results = await asyncio.gather(*(one(i) for i in range(job["n"])), return_exceptions=True)
    ended = time.time()
    ok, errors = 0, []
    for r in results:
        if isinstance(r, BaseException):
            errors.append(failure(r))
        elif r.type == "message" and r.content[0].text and r.usage.output_tokens > 0:
            ok += 1
        else:
            errors.append(f"unexpected reply {r.model_dump_json()[:200]}")
    return {"ok": ok, "errors": errors, "startedMs": started * 1000, "endedMs": ended * 1000}


async def stream(client, job):
    # The raw events of messages.create(stream=True) ...
    raw = await client.messages.create(**ask(job["model"], 1, 64), stream=True)
    types, raw_text = [], ""
    async for event in raw:
        types.append(event.type)
        if event.type == "content_block_delta":
            raw_text += event.delta.text
    # ... and the helper most code uses, messages.stream.
    async with client.messages.stream(**ask(job["model"], 1, 64)) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    return {
        "types": types,
        "rawText": raw_text,
        "text": text,
        "finalText": final.content[0].text,
        "stopReason": final.stop_reason,
        "usage": final.usage.model_dump(exclude_none=True),
    }


async def batch(client, job):
    requests = [{"custom_id": f"py{i}", "params": ask(job["model"], i)} for i in range(job["n"])]
    created = await client.messages.batches.create(requests=requests)
    b = created
    deadline = time.time() + 30
    while b.processing_status != "ended":
        if time.time() > deadline:
            raise TimeoutError(f"batch not ended: {b.request_counts}")
        await asyncio.sleep(0.2)
        b = await client.messages.batches.retrieve(created.id)
    results = {}
    async for line in await client.messages.batches.results(created.id):
        results[line.custom_id] = line.result.type
    return {
        "id": created.id,
        "createdStatus": created.processing_status,
        "counts": b.request_counts.model_dump(),
        "results": results,
    }


async def bench(client, job):
    sem = asyncio.Semaphore(10)
    calls = [None] * job["n"]

    async def one(i):
        async with sem:
            started, t = time.time(), time.perf_counter()
            try:
                await client.messages.create(**ask(job["model"], i))
                status = 200
            except anthropic.APIStatusError as err:
                status = err.status_code
            except Exception as err:  # the bench counts every kind of failure, by class
                status = type(err).__name__
            calls[i] = [started * 1000, (time.perf_counter() - t) * 1000, status]

    if job.get("go"):
        print("READY", flush=True)
        sys.stdin.readline()
    rate = job.get("rate")
    if rate:
        loop = asyncio.get_running_loop()
        t0, tasks = loop.time(), []
        for i in range(job["n"]):
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    else:
        await asyncio.gather(*(one(i) for i in range(job["n"])))
    return {"calls": calls, "ok": sum(1 for c in calls if c[2] == 200)}


async def main(job):
    base_url = job.get("baseUrl") or f"{job['worker']}/anthropic"
    client = AsyncAnthropic(base_url=base_url, api_key=job["token"], max_retries=0)
    try:
        modes = {"realtime": realtime, "stream": stream, "batch": batch, "bench": bench}
        out = await modes[job["mode"]](client, job)
    finally:
        await client.close()
    out["sdk"] = anthropic.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
