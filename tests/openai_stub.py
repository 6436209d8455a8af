"""A small OpenAI-compatible chat-completions server on loopback (the real protocol, SSE included),
for tests where a scripted reply or a scripted failure is the point."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubOpenAI:
    def __init__(self):
        self.reply = "Hello."
        self.status = 200
        self.delay = 0.0
        self.malformed = False
        self.stall = 0.0  # seconds to hang after the first streamed piece
        self.pace = 0.0  # seconds between streamed pieces (a slow model that never stops)
        self.echo_key = False  # error bodies quote the Authorization header, as some servers do
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append(body)
                stub.headers.append(dict(self.headers))
                if stub.delay:
                    time.sleep(stub.delay)
                if stub.status != 200:
                    self.send_response(stub.status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    message = "stub failure"
                    if stub.echo_key:
                        message += f": incorrect API key {self.headers.get('Authorization', '')}"
                    self.wfile.write(json.dumps({"error": {"message": message, "type": "server_error"}}).encode())
                    return
                if not self.path.endswith("/chat/completions"):
                    self.send_response(404)
                    self.end_headers()
                    return
                if body.get("stream"):
                    self._stream(body)
                else:
                    self._whole(body)

            def _whole(self, body):
                payload = {
                    "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": stub.reply}}],
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = stub.reply.split(" ")
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    chunk = {
                        "id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": body.get("model", "stub"),
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if stub.stall and i == 0:
                        time.sleep(stub.stall)
                    if stub.pace:
                        time.sleep(stub.pace)
                    if stub.malformed and i == 1:
                        self.wfile.write(b"data: {not json\n\n")
                        self.wfile.flush()
                        return
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
