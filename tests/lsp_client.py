"""A small LSP client for tests and benches: `python -m lossdsl lsp` in a subprocess, spoken
to in JSON-RPC over its stdin and stdout, as an editor would."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class LspClient:
    def __init__(self, command: list[str] | None = None) -> None:
        """`command`: how to start the server (`python -m lossdsl lsp` by default)."""
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "lossdsl", "lsp"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._ids = itertools.count(1)
        self._messages: queue.Queue = queue.Queue()
        self.notifications: list[dict] = []
        self._responses: dict[int, dict] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self._messages.put(None)
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length is not None, "a message without Content-Length"
            self._messages.put(json.loads(out.read(length)))

    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _next(self, timeout: float) -> dict:
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no message from the server") from None
        if message is None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise ConnectionError(f"the server closed its output:\n{err}")
        if "id" in message and "method" in message:  # a request from the server (none expected): decline it
            self._send({"id": message["id"], "result": None})
        elif "id" in message:
            self._responses[message["id"]] = message
        else:
            self.notifications.append(message)
        return message

    def request(self, method: str, params: dict | None = None, timeout: float = 60.0):
        """Send a request and wait for its result (an error response raises)."""
        rid = next(self._ids)
        self._send({"id": rid, "method": method, "params": params or {}})
        while rid not in self._responses:
            self._next(timeout)
        response = self._responses.pop(rid)
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def notify(self, method: str, params: dict | None = None) -> None:
        self._send({"method": method, "params": params or {}})

    def wait_for(self, method: str, predicate=lambda params: True, timeout: float = 60.0) -> dict:
        """The params of the first notification `method` (not yet consumed) that satisfies `predicate`."""
        while True:
            for i, n in enumerate(self.notifications):
                if n["method"] == method and predicate(n["params"]):
                    del self.notifications[i]
                    return n["params"]
            self._next(timeout)

    # ---- the usual sequence --------------------------------------------------------------

    def initialize(self) -> dict:
        result = self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": ROOT.as_uri(),
                "capabilities": {"textDocument": {"hover": {"contentFormat": ["markdown"]}}},
            },
        )
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, version: int = 1) -> dict:
        """Open a document; returns its published diagnostics."""
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "lossdsl", "version": version, "text": text}},
        )
        return self.wait_for(
            "textDocument/publishDiagnostics", lambda p: p["uri"] == uri and p.get("version") == version
        )

    def change(self, uri: str, text: str, version: int) -> dict:
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
        )
        return self.wait_for(
            "textDocument/publishDiagnostics", lambda p: p["uri"] == uri and p.get("version") == version
        )

    def at(self, method: str, uri: str, line: int, character: int, **extra):
        return self.request(
            method, {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, **extra}
        )

    def close(self) -> int:
        """shutdown, exit; the server's exit status."""
        self.request("shutdown")
        self.notify("exit")
        try:
            return self.proc.wait(timeout=30)
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
