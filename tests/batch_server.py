"""The loopback server with OpenAI's Files and Batches APIs, for batch-mode tests.

`BatchServer(**options)` is `OpenAIServer` (tests/openai_server.py: every option, fault and handler of it applies)
plus:
- POST /v1/files (multipart upload, purpose "batch"), GET /v1/files/{id}, GET /v1/files/{id}/content;
- POST /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel, GET /v1/batches (list, newest first).

A batch walks OpenAI's state machine: validating -> in_progress -> finalizing -> completed, or failed (a bad input
file), expired (window ran out) or cancelling -> cancelled. Each line is answered by a real request to this server's
own /v1/chat/completions or /v1/embeddings, so injected faults land in the error file as OpenAI writes them
(`response.status_code` and body). Options of the batch side:
- step_seconds: time spent in validating and in finalizing, and between two lines in progress (tests: 0.01).
- expire: fractions for the next batches in order; a batch given 0.5 answers half its lines, then expires (the rest
  go to its error file with code `batch_expired`, as OpenAI does).
- fail: how many of the next batches fail validation (status "failed", no output file).

Log: `server.batches` (every batch object, by id), `server.submitted` (custom_id -> how many batches held it),
`server.files` (id -> bytes).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import time
from typing import Any

import aiohttp
from aiohttp import web
from openai_server import OpenAIServer, _error


class BatchServer(OpenAIServer):
    def __init__(self, step_seconds: float = 0.01, expire: list[float] | None = None, fail: int = 0,
                 **options: Any):
        super().__init__(**options)
        self.fail = fail
        self.step_seconds = step_seconds
        self.expire = collections.deque(expire or [])
        self.files: dict[str, bytes] = {}
        self.file_objects: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.submitted: collections.Counter[str] = collections.Counter()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)
        return app

    # ----- files -----------------------------------------------------------------------------------------------

    def _store(self, data: bytes, purpose: str, name: str) -> dict[str, Any]:
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = data
        self.file_objects[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "filename": name,
                                      "created_at": int(time.time()), "purpose": purpose, "status": "processed"}
        return self.file_objects[file_id]

    async def _upload(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request)
        if denied:
            return denied
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not hasattr(upload, "file"):
            return _error(400, "expected a file and purpose=batch", {})
        return web.json_response(self._store(upload.file.read(), "batch", upload.filename))  # type: ignore[union-attr]

    async def _file(self, request: web.Request) -> web.Response:
        found = self.file_objects.get(request.match_info["id"])
        return web.json_response(found) if found else _error(404, "No such File object", {})

    async def _content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        return web.Response(body=data) if data is not None else _error(404, "No such File object", {})

    # ----- batches ---------------------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request)
        if denied:
            return denied
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return _error(400, "input_file_id not found", {})
        if body.get("endpoint") not in ("/v1/chat/completions", "/v1/embeddings"):
            return _error(400, f"unsupported endpoint {body.get('endpoint')}", {})
        batch_id = f"batch_{next(self._ids)}"
        now = int(time.time())
        batch = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                 "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
                 "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
                 "in_progress_at": None, "expires_at": now + 86400, "finalizing_at": None, "completed_at": None,
                 "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata")}
        self.batches[batch_id] = batch
        task = asyncio.ensure_future(self._work(batch, self.expire.popleft() if self.expire else None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(batch)

    async def _retrieve(self, request: web.Request) -> web.Response:
        found = self.batches.get(request.match_info["id"])
        return web.json_response(found) if found else _error(404, "No such Batch object", {})

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error(404, "No such Batch object", {})
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return web.json_response(batch)

    async def _list(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", 20))
        ordered = list(reversed(self.batches.values()))
        after = request.query.get("after")
        if after:
            ids = [b["id"] for b in ordered]
            ordered = ordered[ids.index(after) + 1:] if after in ids else []
        page = ordered[:limit]
        return web.json_response({"object": "list", "data": page, "has_more": len(ordered) > limit,
                                  "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None})

    async def _work(self, batch: dict[str, Any], expire: float | None) -> None:
        """The state machine of one batch; each line is a real request to this server."""
        await asyncio.sleep(self.step_seconds)
        try:
            lines = [json.loads(line) for line in self.files[batch["input_file_id"]].splitlines() if line.strip()]
            ids = [line["custom_id"] for line in lines]
            if len(set(ids)) != len(ids) or any(line["url"] != batch["endpoint"] for line in lines):
                raise ValueError("duplicate custom_id or a line for another endpoint")
            if self.fail:
                self.fail -= 1
                raise ValueError("the input file failed validation (injected)")
        except (ValueError, KeyError, TypeError) as exc:
            batch.update(status="failed", failed_at=int(time.time()),
                         errors={"object": "list", "data": [{"code": "invalid_file", "message": str(exc)}]})
            return
        self.submitted.update(ids)
        batch.update(status="in_progress", in_progress_at=int(time.time()))
        batch["request_counts"]["total"] = len(lines)
        stop_at = round(len(lines) * expire) if expire is not None else len(lines)
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with aiohttp.ClientSession(f"http://127.0.0.1:{self.port}", headers=headers) as session:
            for number, line in enumerate(lines):
                if batch["status"] == "cancelling" or number >= stop_at:
                    break
                await asyncio.sleep(self.step_seconds)
                async with session.post(line["url"], json=line["body"]) as response:
                    text = await response.text()
                try:
                    body = json.loads(text)
                except ValueError:
                    body, status = {"error": {"message": "the server answered with broken JSON"}}, 500
                else:
                    status = response.status
                result = {"id": f"batch_req_{next(self._ids)}", "custom_id": line["custom_id"],
                          "response": {"status_code": status, "request_id": f"req_{number}", "body": body},
                          "error": None}
                (output if status == 200 else errors).append(result)
                batch["request_counts"]["completed" if status == 200 else "failed"] += 1
        if batch["status"] == "cancelling":
            final = "cancelled"
        elif stop_at < len(lines):
            final = "expired"
            for line in lines[stop_at:]:
                errors.append({"id": f"batch_req_{next(self._ids)}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "batch_expired", "message": "This request could not be executed "
                                         "before the completion window expired."}})
        else:
            batch.update(status="finalizing", finalizing_at=int(time.time()))
            await asyncio.sleep(self.step_seconds)
            final = "completed"
        for records, field in ((output, "output_file_id"), (errors, "error_file_id")):
            if records:
                data = "".join(json.dumps(r) + "\n" for r in records).encode()
                batch[field] = self._store(data, "batch_output", f"{batch['id']}_{field}.jsonl")["id"]
        batch.update(status=final, **{f"{final}_at": int(time.time())})
