"""Issue 27's attacks against a running site: gunicorn serving a deployment, attacked over loopback.

    .venv/bin/python bench/hostile_site.py --data-dir var --out var/bench/hostile_site.json

``--data-dir`` is a deployment with a checkpoint and knowledge bases in service (``make demo`` leaves one in
``var``). The script adds an astronomer, mallory, and a private task of another astronomer's with a knowledge
base (a copy of the lens one), then starts gunicorn (one worker process) with an anonymous limit of
``--anon-rate`` and measures:

- a catalog VOTable whose BINARY STREAM points at a file of the server's (``file://``) and one pointing at a
  local HTTP server that records its hits: the status, whether the file's text came back, the hits;
- a gzip bomb (a real header, then ``--bomb-mb`` MB of zeros, a file of about 1 MB) sent to the anonymous
  ``POST /api/v1/search/``: the status, and the web worker's peak RSS (VmHWM) before and after;
- the anonymous search page asked for the private task's knowledge base: whether its name shows;
- ``--spoofed`` anonymous requests, each with another ``X-Forwarded-For``: how many got through;
- gunicorn started with the built-in secret key: its exit status and what it said.

Each figure is of this machine and these files; nothing here is an SDSS measurement. Prints JSON.
"""

import argparse
import gzip
import http.server
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, gunicorn, report  # noqa: E402

SECRET = "GALSPEC_SECRET_KEY=bench-canary-not-a-key"  # noqa: S105  a canary the answers must not carry


def _peak_rss_mb(master: subprocess.Popen) -> float:
    (worker,) = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    status = Path(f"/proc/{worker}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def _people(data_dir: Path) -> tuple[str, int]:
    """mallory's token, and the id of a private knowledge base of olga's."""
    os.environ["GALSPEC_DATA_DIR"] = str(data_dir.resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from kb.models import KnowledgeBase, SearchTask

    mallory, _ = User.objects.get_or_create(username="mallory")
    mallory.groups.add(Group.objects.get(name="astronomer"))
    olga, _ = User.objects.get_or_create(username="olga")
    task, _ = SearchTask.objects.get_or_create(
        name="bench-hidden",
        defaults={"title": "Bench Hidden 7781", "labelling": "catalog", "owner": olga, "published": False},
    )
    kb = KnowledgeBase.objects.filter(task=task).first()
    if kb is None:
        kb = KnowledgeBase.objects.get(task__name="lens", in_service=True)
        kb.pk, kb.task, kb.version, kb.in_service = None, task, 1, True
        kb.save()
    return Token.objects.get_or_create(user=mallory)[0].key, kb.pk


def _recording_server():
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(SECRET.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


def _votable(stream: str) -> bytes:
    return f"""<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE><TABLE>
<FIELD name="specobjid" datatype="char" arraysize="*"/><DATA><BINARY><STREAM href="{stream}"/></BINARY></DATA>
</TABLE></RESOURCE></VOTABLE>""".encode()


def _bomb(head: bytes, megabytes: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as inflating:
        inflating.write(head)
        zeros = bytes(2**20)
        for _ in range(megabytes):
            inflating.write(zeros)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO / "var")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--anon-rate", default="6/minute")
    parser.add_argument("--bomb-mb", type=int, default=1024)
    parser.add_argument("--spoofed", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    token, hidden_kb = _people(args.data_dir)
    spectrum = next((args.data_dir / "demo-survey").rglob("spec-*.fits"))
    url = f"http://127.0.0.1:{args.port}"
    result = {"server": "gunicorn, 1 worker, loopback", "anon_rate": args.anon_rate}
    with tempfile.TemporaryDirectory() as scratch:
        secret = Path(scratch) / "server.env"
        secret.write_text(SECRET + "\n")
        recorder, hits = _recording_server()
        server = gunicorn(args.data_dir, args.port, workers=1, threads=2, GALSPEC_THROTTLE_ANON=args.anon_rate)
        try:
            for kind, stream in (("file", f"file://{secret}"), ("http", f"http://127.0.0.1:{recorder.server_port}/")):
                answer = requests.post(
                    f"{url}/api/v1/tasks/",
                    headers={"Authorization": f"Token {token}"},
                    data={"name": f"bench-{kind}", "target_label": "odd"},
                    files={"catalog": ("mine.vot", _votable(stream))},
                    timeout=60,
                )
                result[f"votable_{kind}"] = {
                    "status": answer.status_code,
                    "file_text_in_answer": "bench-canary" in answer.text,
                    "message": answer.json()["error"]["message"][:200],
                }
            result["votable_http_hits"] = len(hits)

            bomb = _bomb(spectrum.read_bytes()[:2880], args.bomb_mb)
            before = _peak_rss_mb(server)
            answer = requests.post(
                f"{url}/api/v1/search/", data={"task": "bpt3"}, files={"file": ("spec.fits", bomb)}, timeout=120
            )
            result["gzip_bomb"] = {
                "sent_bytes": len(bomb),
                "inflates_to_mb": args.bomb_mb,
                "status": answer.status_code,
                "message": answer.json()["error"]["message"][:200],
                "worker_peak_rss_mb_before": round(before, 1),
                "worker_peak_rss_mb_after": round(_peak_rss_mb(server), 1),
            }
            page = requests.get(f"{url}/?knowledge_base={hidden_kb}", timeout=60)
            result["private_kb_on_search_page"] = {
                "status": page.status_code,
                "task_name_shown": "bench-hidden" in page.text or "Bench Hidden" in page.text,
            }
            statuses = [
                requests.get(
                    f"{url}/api/v1/tasks/", headers={"X-Forwarded-For": f"198.51.100.{n}"}, timeout=60
                ).status_code
                for n in range(args.spoofed)
            ]
            result["spoofed_forwarded_for"] = {"sent": len(statuses), "passed": statuses.count(200)}
        finally:
            server.terminate()
            server.wait(timeout=30)
            recorder.shutdown()
        env = {key: value for key, value in os.environ.items() if not key.startswith("GALSPEC_")}
        env.update(GALSPEC_DATA_DIR=scratch, DJANGO_SETTINGS_MODULE="galspec_site.settings")
        start = time.monotonic()
        refused = subprocess.run(  # noqa: S603  this repository's server, a fixed argv
            [sys.executable, "-m", "gunicorn", "galspec_site.wsgi", "--bind", f"127.0.0.1:{args.port}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = next((line for line in refused.stderr.splitlines() if "SECRET_KEY" in line), "")
        result["gunicorn_with_the_built_in_key"] = {
            "exit_status": refused.returncode,
            "seconds": round(time.monotonic() - start, 1),
            "said": said.strip()[:300],
        }
    report(result, args.out)


if __name__ == "__main__":
    main()
