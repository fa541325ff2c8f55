#!/usr/bin/python3
"""Serves gzip files over local HTTP and has single-member readers decode them: curl --compressed
and headless Chromium (fetch() with Content-Encoding: gzip, and DecompressionStream('gzip') on the
raw bytes), each body compared byte for byte with the original.

Usage: http_gzip_readers.py DIR NAME...   (DIR holds NAME, the original, and NAME.gz)
Prints one line per reader and file that differs or fails; exits 0 when every body matched, 1
otherwise, 77 when no Chromium is installed.
"""
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

BROWSERS = ["chromium-headless-shell", "chromium"]

PAGE = """<!doctype html><meta charset="utf-8"><script>
const names = %s;
async function post(path, body) { await fetch(path, {method: 'POST', body}); }
(async () => {
  for (const name of names) {
    for (const how of ['fetch', 'stream']) {
      try {
        let body;
        if (how === 'fetch') {
          body = await (await fetch('/encoded/' + name)).arrayBuffer();
        } else {
          const raw = await fetch('/raw/' + name);
          body = await new Response(raw.body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();
        }
        await post('/result/' + how + '/' + name, body);
      } catch (e) {
        await post('/error/' + how + '/' + name, String(e));
      }
    }
  }
  await post('/done', '');
})();
</script>"""


def main():
    directory, names = sys.argv[1], sys.argv[2:]
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    results = {}
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_bytes(self, body, headers):
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/":
                self.send_bytes((PAGE % json.dumps(names)).encode(), {"Content-Type": "text/html"})
                return
            kind, _, name = self.path.lstrip("/").partition("/")
            with open(os.path.join(directory, name + ".gz"), "rb") as f:
                packed = f.read()
            headers = {"Content-Type": "application/octet-stream", "Cache-Control": "no-store"}
            if kind == "encoded":
                headers["Content-Encoding"] = "gzip"
            self.send_bytes(packed, headers)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_bytes(b"", {})
            if self.path == "/done":
                done.set()
            else:
                results[self.path] = body

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    failures = []

    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            original = f.read()
        curl = subprocess.run(["curl", "-s", "--compressed", url + "encoded/" + name], capture_output=True)
        if curl.returncode != 0 or curl.stdout != original:
            failures.append(f"curl --compressed {name}: status {curl.returncode}, "
                            f"{len(curl.stdout)} of {len(original)} bytes")

    if browser is None:
        print("no Chromium installed", file=sys.stderr)
        sys.exit(77)
    profile = os.path.join(directory, "chromium-profile")
    process = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                f"--user-data-dir={profile}", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        finished = done.wait(timeout=90)
    finally:
        # The browser's own children (zygote, renderers) too: they outlive a kill of the first.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        server.shutdown()
    if not finished:
        failures.append("chromium: the page did not finish in 90 s")
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            original = f.read()
        for how in ("fetch", "stream"):
            if f"/error/{how}/{name}" in results:
                failures.append(f"chromium {how} {name}: {results[f'/error/{how}/{name}'].decode(errors='replace')}")
                continue
            body = results.get(f"/result/{how}/{name}")
            if body != original:
                failures.append(f"chromium {how} {name}: "
                                f"{'no body' if body is None else f'{len(body)} of {len(original)} bytes'}")
    for failure in failures:
        print(failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
