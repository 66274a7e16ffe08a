# imgsearch serve under faults: the index replaced while requests run (no failed request),
# a corrupt index dropped in place (the old one keeps serving, /healthz says why), a
# client sending one byte a second (cut off; others unaffected), SIGTERM under load (the
# requests in flight complete, exit 0).
# fixture: corel
source "$(dirname "$0")/lib.sh"
kill_serve_on_exit

# A second, small index with the same model, to swap in.
mkdir -p "$WORK/few"
cp "$COREL"/dinosaurs/40[0-5].jpg "$COREL"/horses/70[0-5].jpg "$WORK/few/"
"$IMGSEARCH" index "$WORK/few" -i "$WORK/few.index" "${MOBILENET_ARGS[@]}" 2>/dev/null
cp "$COREL_INDEX" "$WORK/served.index"

start_serve -i "$WORK/served.index" --reload-interval 0.2 --request-timeout 3 --idle-timeout 2 --threads 1
export SERVE_URL COREL WORK
"$PYTHON" - <<'EOF'
import json, os, shutil, socket, threading, time, urllib.error, urllib.request

url, corel, work = os.environ["SERVE_URL"], os.environ["COREL"], os.environ["WORK"]
host, port = url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1].strip("/"))
jpeg = open(f"{corel}/buses/301.jpg", "rb").read()

def call(path, body=None, timeout=30):
    req = urllib.request.Request(url + path.lstrip("/"), data=body, headers={"Content-Type": "image/jpeg"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

def health():
    return json.loads(call("/healthz")[1])

# Load: id searches and uploads on 4 threads; every answer must be a 200 with results.
failures, done, stop = [], [0], threading.Event()
def load(n):
    while not stop.is_set():
        try:
            code, body = call("/api/search?id=3&k=5") if n % 2 else call("/api/search?k=5", jpeg)
            if code != 200 or not json.loads(body)["results"]:
                failures.append((code, body[:200]))
        except Exception as e:  # noqa: BLE001 - any failure counts
            failures.append(repr(e))
        done[0] += 1
threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
for t in threads:
    t.start()

def wait_for(predicate, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        h = health()
        if predicate(h):
            return h
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {health()}")

time.sleep(1.0)
before = done[0]
# `imgsearch index` saves by renaming a complete file over the old one: do the same.
shutil.copy(f"{work}/few.index", f"{work}/served.index.tmp")
os.rename(f"{work}/served.index.tmp", f"{work}/served.index")
h = wait_for(lambda h: h["images"] == 12, "the new index")
assert h["status"] == "ok" and h["reloads"] == 1 and h["generation"] == 2, h
time.sleep(1.0)

# A corrupt file written in place (not renamed): refused, the 12-image index serves on.
with open(f"{work}/served.index", "r+b") as f:
    f.seek(200)
    f.write(b"\x5a" * 64)
h = wait_for(lambda h: h["status"] == "degraded", "the corrupt index to be noticed")
assert h["images"] == 12 and h["reload_failures"] >= 1 and "served.index" in h["reload_error"], h
time.sleep(1.0)
stop.set()
for t in threads:
    t.join()
assert not failures, failures[:5]
assert done[0] - before > 20, done
metrics = call("/metrics")[1].decode()
assert "imgsearch_index_reload_failing 1" in metrics and 'imgsearch_index_reloads_total{result="ok"} 1' in metrics
print(f"reload under load: {done[0]} requests, none failed")

# Slowloris: one byte a second. The request deadline (3 s) cuts it off; meanwhile
# other clients are answered at once.
slow = socket.create_connection((host, port))
request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
closed_after, latencies = [None], []
def dribble():
    start = time.time()
    try:
        for i in range(len(request)):
            slow.sendall(request[i:i + 1])
            slow.settimeout(1.0)
            try:
                if slow.recv(1024) == b"":
                    closed_after[0] = time.time() - start
                    return
            except socket.timeout:
                pass
    except OSError:
        closed_after[0] = time.time() - start
t = threading.Thread(target=dribble)
t.start()
time.sleep(0.5)
for _ in range(20):
    s = time.time()
    code, _ = call("/api/search?id=5&k=3", timeout=5)
    assert code == 200
    latencies.append(time.time() - s)
t.join(timeout=30)
assert closed_after[0] is not None, "the one-byte-a-second client was never cut off"
assert 2.5 <= closed_after[0] <= 10, closed_after
assert max(latencies) < 2.0, latencies
print(f"slow client cut off after {closed_after[0]:.1f} s; others answered in <= {max(latencies) * 1000:.0f} ms")
EOF
grep -q "index reload failed, still serving the previous index: .*served.index" "$WORK/serve.err" ||
  { cat "$WORK/serve.err"; fail "the failed reload was not logged"; }
stop_serve

# SIGTERM under load: a request whose body is still arriving when the signal comes is
# answered; the server then exits 0, and refuses new connections.
start_serve -i "$COREL_INDEX" --threads 1
export SERVE_URL SERVE_PID
"$PYTHON" - <<'EOF'
import json, os, signal, socket, threading, time, urllib.request

url, corel, pid = os.environ["SERVE_URL"], os.environ["COREL"], int(os.environ["SERVE_PID"])
host, port = url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1].strip("/"))
jpeg = open(f"{corel}/buses/300.jpg", "rb").read()

results, errors = [], []
def upload():
    try:
        req = urllib.request.Request(url + "api/search?k=3", data=jpeg, headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(req, timeout=30) as r:
            results.append(r.status)
    except Exception as e:  # noqa: BLE001
        errors.append(e)
busy = [threading.Thread(target=upload) for _ in range(8)]

# The slow one: headers and half the body, then SIGTERM, then the rest.
s = socket.create_connection((host, port))
s.sendall(f"POST /api/search?k=3 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
          f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg[: len(jpeg) // 2])
time.sleep(0.3)
for t in busy:
    t.start()
time.sleep(0.05)
os.kill(pid, signal.SIGTERM)
time.sleep(0.5)
s.sendall(jpeg[len(jpeg) // 2:])
data = b""
while chunk := s.recv(65536):
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
assert head.startswith(b"HTTP/1.1 200"), data[:300]
assert json.loads(body)["results"][0]["path"].endswith("/buses/300.jpg")
for t in busy:
    t.join()
# Uploads that reached the server before it stopped accepting were answered; the others
# were refused at connect, never cut off midway with an error status.
assert all(code == 200 for code in results), results
assert all(isinstance(e.reason if hasattr(e, "reason") else e, (ConnectionRefusedError, ConnectionResetError))
           for e in errors), errors
print(f"SIGTERM under load: in-flight upload answered; {len(results)} of 8 concurrent uploads answered, "
      f"{len(errors)} refused after the stop")
EOF
rc=0
wait "$SERVE_PID" || rc=$?
SERVE_PID=""
[ "$rc" = 0 ] || { cat "$WORK/serve.err"; fail "serve exited with $rc after SIGTERM"; }
expect_in "$WORK/serve.err" "stopped"
