#!/usr/bin/env python3
"""Runs a Lambda binary behind a local Lambda Runtime API (the protocol the AWS runtime speaks)
and measures it the way Lambda would bill it: init time (process start to its first request
for work), invocation time (event handed over to response received), and peak RSS (VmHWM).

usage: lambda_invoke.py BINARY EVENT.json [--invocations N] [--env K=V ...]
Prints one JSON object with the figures. Standard library only; listens on 127.0.0.1.
"""
import argparse, json, os, statistics, subprocess, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    def __init__(self, event, invocations):
        self.event = event
        self.pending = invocations
        self.cond = threading.Condition()
        self.first_next_at = None
        self.sent_at = {}
        self.results = []  # (request_id, seconds, status, body bytes)
        self.done = threading.Event()


def handler_for(api):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != PREFIX + "/invocation/next":
                return self.reply(404, b"{}")
            now = time.perf_counter()
            if api.first_next_at is None:
                api.first_next_at = now
            with api.cond:
                if api.pending == 0:
                    api.done.set()
                    api.cond.wait()  # the benchmark is over: park the runtime until it is killed
                    return
                api.pending -= 1
            request_id = str(uuid.uuid4())
            headers = {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 900_000),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:111122223333:function:bench",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            }
            api.sent_at[request_id] = time.perf_counter()
            self.reply(200, api.event, headers)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length) if length else b""
            parts = self.path[len(PREFIX):].strip("/").split("/")
            if parts[:1] == ["init"]:
                api.results.append(("init", 0.0, "init-error", body))
                api.done.set()
            elif len(parts) == 3 and parts[0] == "invocation":
                request_id, kind = parts[1], parts[2]
                elapsed = time.perf_counter() - api.sent_at.get(request_id, time.perf_counter())
                api.results.append((request_id, elapsed, kind, body))
            self.reply(202, b'{"status":"OK"}')

        def reply(self, status, body, headers=None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("event")
    parser.add_argument("--invocations", type=int, default=5)
    parser.add_argument("--env", action="append", default=[])
    args = parser.parse_args()

    with open(args.event, "rb") as f:
        event = f.read()
    api = RuntimeApi(event, args.invocations)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "RUST_LOG": "info",
    }
    env.update(kv.split("=", 1) for kv in args.env)
    started = time.perf_counter()
    process = subprocess.Popen([args.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = api.done.wait(timeout=120)
    rss = peak_rss_kib(process.pid) if process.poll() is None else None
    process.kill()
    process.wait()
    server.shutdown()
    if not finished or api.first_next_at is None:
        sys.exit(f"the runtime did not finish: {process.stderr.read().decode(errors='replace')[-2000:]}")
    failures = [r for r in api.results if r[2] != "response"]
    if failures:
        sys.exit(f"invocation failed: {failures[0][3][:500]!r}")
    times_ms = [r[1] * 1000 for r in api.results]
    response = api.results[-1][3]
    events = json.loads(response)
    print(json.dumps({
        "binary": args.binary,
        "event_bytes": len(event),
        "response_bytes": len(response),
        "events_per_response": len(events),
        "init_ms": round((api.first_next_at - started) * 1000, 2),
        "invocation_ms": {"first": round(times_ms[0], 2), "median": round(statistics.median(times_ms), 2), "min": round(min(times_ms), 2)},
        "invocations": len(times_ms),
        "peak_rss_mib": round(rss / 1024, 2) if rss else None,
    }, indent=2))


if __name__ == "__main__":
    main()
