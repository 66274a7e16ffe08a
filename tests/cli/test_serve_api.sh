# imgsearch serve: the HTTP API on the Corel-1k index with the real MobileNetV2, through
# real sockets: uploads rank like `imgsearch query`, id search, refine, images and
# thumbnails, info, health, metrics, and the error statuses from real bad requests.
# fixture: corel
source "$(dirname "$0")/lib.sh"
kill_serve_on_exit

# A non-loopback address needs a token (or --public), before anything is loaded.
expect_status 2 "$IMGSEARCH" serve -i "$COREL_INDEX" --host 0.0.0.0 --port 0
expect_in "$WORK/err" "refusing to serve on 0.0.0.0 .*without --token"

"$IMGSEARCH" query "$COREL/buses/300.jpg" -i "$COREL_INDEX" -k 9 --json >"$WORK/query.json"
"$IMGSEARCH" info -i "$COREL_INDEX" --json >"$WORK/info.json"

start_serve -i "$COREL_INDEX" --token "tok-123" --max-upload-mb 2 --threads 1
export SERVE_URL COREL WORK
"$PYTHON" - <<'EOF'
import json, os, socket, struct, urllib.error, urllib.request, zlib
from io import BytesIO
from PIL import Image

url, corel, work = os.environ["SERVE_URL"], os.environ["COREL"], os.environ["WORK"]
AUTH = {"Authorization": "Bearer tok-123"}

def call(method, path, body=None, headers=None, auth=True):
    h = dict(AUTH if auth else {})
    h.update(headers or {})
    req = urllib.request.Request(url + path.lstrip("/"), data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()

def raw(path):  # a request line sent as is (urllib would normalise "../")
    s = socket.create_connection((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1].strip("/"))))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body

def expect_error(status, got, what):
    code, headers, body = got
    assert code == status, f"{what}: expected {status}, got {code}: {body[:300]!r}"
    assert headers.get("Content-Type") == "application/json", (what, headers)
    message = json.loads(body)["error"]
    assert message and "\n" not in message, (what, message)
    return message

bus = f"{corel}/buses/300.jpg"
jpeg = open(bus, "rb").read()

# Upload (raw body): the same ranking and scores as `imgsearch query`.
code, headers, body = call("POST", "/api/search?k=9", jpeg, {"Content-Type": "image/jpeg"})
assert code == 200, body
upload = json.loads(body)
want = json.loads(open(f"{work}/query.json").read())["results"]
got = upload["results"]
assert [r["path"] for r in got] == [r["path"] for r in want], (got, want)
for g, w in zip(got, want):
    assert abs(g["score"] - w["score"]) < 1e-4, (g, w)
    assert g["rank"] == w["rank"]
assert got[0]["path"] == bus and got[0]["score"] > 0.999
assert sum("/buses/" in r["path"] for r in got) >= 8, got
assert upload["took_ms"] > 0
assert headers["X-Content-Type-Options"] == "nosniff"
bus_id = got[0]["id"]

# Multipart field "image" (a browser form): the same answer.
boundary = "----imgsearch-test-boundary"
form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"300.jpg\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
code, _, body = call("POST", "/api/search?k=9", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
assert code == 200, body
assert [r["id"] for r in json.loads(body)["results"]] == [r["id"] for r in got]

# Id search: itself first, buses after.
code, _, body = call("GET", f"/api/search?id={bus_id}&k=5")
assert code == 200, body
byid = json.loads(body)
assert byid["query"] == {"type": "id", "id": bus_id, "path": bus}
assert byid["results"][0]["id"] == bus_id and abs(byid["results"][0]["score"] - 1) < 1e-4
assert all("/buses/" in r["path"] for r in byid["results"]), byid

# Refine: two buses good, a non-bus bad; the bad one is left out, buses lead.
other = next(r["id"] for r in json.loads(call("GET", "/api/search?id=0&k=3")[2])["results"])
code, _, body = call("POST", "/api/search", json.dumps({"positive": [got[1]["id"], got[2]["id"]],
                                                        "negative": [other], "k": 9}).encode(),
                     {"Content-Type": "application/json"})
assert code == 200, body
refined = json.loads(body)["results"]
assert len(refined) == 9 and other not in [r["id"] for r in refined]
assert {got[1]["id"], got[2]["id"]} <= {r["id"] for r in refined}
assert sum("/buses/" in r["path"] for r in refined) >= 8, refined

# The original file and a small JPEG, by id.
code, headers, body = call("GET", f"/api/images/{bus_id}")
assert code == 200 and body == jpeg and headers["Content-Type"] == "image/jpeg"
code, headers, body = call("GET", f"/api/thumbs/{bus_id}")
assert code == 200 and headers["Content-Type"] == "image/jpeg"
thumb = Image.open(BytesIO(body))
assert thumb.format == "JPEG" and max(thumb.size) == 200, thumb.size

# info = `imgsearch info --json`; health; the page's headers.
code, _, body = call("GET", "/api/info")
assert code == 200 and json.loads(body) == json.loads(open(f"{work}/info.json").read())
code, _, body = call("GET", "/healthz", auth=False)
assert code == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["images"] == 1000
code, headers, body = call("GET", "/", auth=False)
assert code == 200 and b"<title>imgsearch</title>" in body
csp = headers["Content-Security-Policy"]
assert "default-src 'none'" in csp and "script-src 'nonce-" in csp and "frame-ancestors 'none'" in csp, csp
assert headers["X-Content-Type-Options"] == "nosniff"

# Errors, from real bad requests.
expect_error(404, call("GET", "/api/search?id=1000"), "unknown id")
expect_error(404, call("GET", "/api/images/1000"), "unknown image")
expect_error(400, call("GET", f"/api/search?id={bus_id}&k=0"), "k=0")
expect_error(400, call("GET", "/api/search?id=../../etc/passwd"), "path as id")
for path, status in [("/api/images/../../etc/passwd", 400), ("/api/thumbs/..%2f..%2fetc%2fpasswd", 400),
                     ("/../../etc/passwd", 404), ("/api/../../../etc/passwd", 404), ("/api/images/%2e%2e/1", 400)]:
    code, body = raw(path)
    assert code == status and b"root:" not in body, (path, code, body[:200])
msg = expect_error(415, call("POST", "/api/search", jpeg[: len(jpeg) // 2], {"Content-Type": "image/jpeg"}), "truncated")
assert msg.startswith("upload: "), msg
expect_error(415, call("POST", "/api/search", os.urandom(5000), {"Content-Type": "application/octet-stream"}), "random")
expect_error(400, call("POST", "/api/search", b"", {"Content-Type": "image/jpeg"}), "empty")

# A 30000x30000 PNG: a few kilobytes that would decode to 2.7 GB. Refused from its header.
def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
row = b"\0" + b"\0" * 30000 * 3
bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * 64, 9)) + chunk(b"IEND", b""))
assert len(bomb) < 100_000
msg = expect_error(413, call("POST", "/api/search", bomb, {"Content-Type": "image/png"}), "PNG bomb")
assert "30000x30000" in msg, msg

# Over --max-upload-mb 2: refused (by the HTTP layer, from Content-Length).
expect_error(413, call("POST", "/api/search", b"\xff" * (3 << 20), {"Content-Type": "image/jpeg"}), "oversized")
expect_error(415, call("POST", "/api/search", b"\xff\xd8" * (1 << 19), {"Content-Type": "image/jpeg"}), "1 MiB junk")

# Token: none, wrong, right.
code, headers, _ = call("GET", "/api/search?id=1", auth=False)
assert code == 401 and headers["WWW-Authenticate"] == "Bearer"
expect_error(401, call("GET", "/api/search?id=1", headers={"Authorization": "Bearer tok-124"}), "wrong token")
expect_error(401, call("GET", "/metrics", auth=False), "metrics without token")

code, _, body = call("GET", "/metrics")
metrics = body.decode()
for line in ['imgsearch_http_requests_total{endpoint="search_upload",status="200"} 2',
             'imgsearch_http_requests_total{endpoint="search_upload",status="415"} 3',
             'imgsearch_http_requests_total{endpoint="search_upload",status="413"} 1',
             'imgsearch_http_requests_total{endpoint="transport",status="413"} 1',
             'imgsearch_http_requests_total{endpoint="search_refine",status="200"} 1',
             'imgsearch_index_images 1000', 'imgsearch_index_reloads_total{result="failed"} 0']:
    assert line in metrics, (line, metrics)
assert 'imgsearch_http_request_duration_seconds_bucket{endpoint="search_id",le="+Inf"}' in metrics
print("serve API ok")
EOF
stop_serve
expect_in "$WORK/serve.err" "stopped"
