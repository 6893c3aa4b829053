"""The seed's Python pattern, as a typical user writes it: asyncio.Semaphore + a retry loop
around the official anthropic SDK (its own retries off, so the retry budget is ours).

Job (JSON, from argv[1] or stdin): { baseUrl, apiKey, concurrency, maxRetries, timeoutMs, bodies }
Prints one JSON line: { ok, failed, wallMs, errors: { "<ErrorClass>": n } }.
Used by bench/pacing.mjs; not a test.
"""
import asyncio
import json
import random
import sys
import time

import anthropic

RETRYABLE_STATUS = {408, 409, 429}


def retry_after_s(err):
    """The server's retry-after header (seconds), if it sent one."""
    response = getattr(err, "response", None)
    if response is None:
        return None
    try:
        return float(response.headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


def retryable(err):
    if isinstance(err, anthropic.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(err, anthropic.APIStatusError):
        return err.status_code in RETRYABLE_STATUS or err.status_code >= 500
    return False


async def main(job):
    client = anthropic.AsyncAnthropic(
        api_key=job["apiKey"],
        base_url=job["baseUrl"],
        max_retries=0,
        timeout=job["timeoutMs"] / 1000,
        # anthropic 2.x sends the key as `Authorization: Bearer`; the simulator (like the
        # Messages API docs) wants `x-api-key`, so send that too.
        default_headers={"x-api-key": job["apiKey"]},
    )
    sem = asyncio.Semaphore(job["concurrency"])
    max_retries = job["maxRetries"]

    async def one(body):
        async with sem:
            for attempt in range(max_retries + 1):
                try:
                    return await client.messages.create(**body)
                except Exception as err:  # noqa: BLE001 - classified below
                    if attempt == max_retries or not retryable(err):
                        raise
                    delay = retry_after_s(err)
                    if delay is None:
                        delay = 2**attempt + random.random()  # 1 s, 2 s, 4 s, ... plus jitter
                    await asyncio.sleep(delay)

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(b) for b in job["bodies"]), return_exceptions=True)
    wall_ms = (time.perf_counter() - t0) * 1000
    await client.close()
    errors = {}
    for r in results:
        if isinstance(r, BaseException):
            errors[type(r).__name__] = errors.get(type(r).__name__, 0) + 1
    ok = len(results) - sum(errors.values())
    print(json.dumps({"ok": ok, "failed": len(results) - ok, "wallMs": wall_ms, "errors": errors}))


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else sys.stdin.read()
    asyncio.run(main(json.loads(raw)))
