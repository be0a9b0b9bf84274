# The sandbox images' health server: GET /sandbox_health answers
# {"status":"ok","service":"sandbox","timestamp":"<RFC 3339 UTC>"}; any other path is 404.
import json
import sys
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health(BaseHTTPRequestHandler):
    timeout = 120

    def do_GET(self):
        if self.path.split("?", 1)[0] != "/sandbox_health":
            self.send_error(404)
            return
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps(
            {"status": "ok", "service": "sandbox", "timestamp": now},
            separators=(",", ":"),
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


host, port = sys.argv[1], int(sys.argv[2])
server = ThreadingHTTPServer((host, port), Health)
print(f"Health server listening on {host}:{port}", flush=True)
server.serve_forever()
