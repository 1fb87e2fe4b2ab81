"""The seed's service, as it ran there: Flask on Flask's development server.

`/health` answers ok; `/` calls the next service (NEXT_URL, a new connection per call, as
`requests.get` without a session does) and nests its answer. Used by lab/bench/apps/run.ts only:
  PORT=5000 SERVICE_NAME=a NEXT_URL=http://127.0.0.1:5001/ /usr/bin/python3 flask_app.py
"""
import json
import os
import urllib.request

from flask import Flask, jsonify

app = Flask(__name__)
NAME = os.environ.get("SERVICE_NAME", "flask")
NEXT_URL = os.environ.get("NEXT_URL")
TIMEOUT_S = float(os.environ.get("DOWNSTREAM_TIMEOUT_MS", "2000")) / 1000


@app.route("/health")
def health():
    return jsonify(status="ok")


@app.route("/")
def index():
    if not NEXT_URL:
        return jsonify(service=NAME, downstream=[])
    try:
        with urllib.request.urlopen(NEXT_URL, timeout=TIMEOUT_S) as answer:
            body = json.load(answer)
    except TimeoutError:
        return jsonify(service=NAME, error="timed out", failed=NEXT_URL), 504
    except Exception as err:  # the seed's shape: any failure is a bad gateway
        return jsonify(service=NAME, error=str(err), failed=NEXT_URL), 502
    return jsonify(service=NAME, downstream=[body])


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
