"""Headless Chromium (Debian's ``chromium``) driven through the DevTools protocol.

One page, logged in by the session cookie a test got from the form login: navigate, wait until the
page says it is ready, read the DOM, take a PNG screenshot. Every request the page makes is
recorded, so a test can show that nothing left the machine.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def executable() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise FileNotFoundError("chromium is not installed: `make bi-install` installs it")
    return found


class Page:
    def __init__(self, width: int = 1440, height: int = 2400):
        self.profile = tempfile.mkdtemp(prefix="mwh-chromium-")
        self.process = subprocess.Popen(
            [executable(), *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        browser = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not browser:
            line = self.process.stderr.readline()
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            browser = match.group(1) if match else ""
            if not line and self.process.poll() is not None:
                break
        if not browser:
            self.close()
            raise RuntimeError("chromium did not open its DevTools port")
        port = urllib.parse.urlsplit(browser).port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            target = next(t for t in json.load(reply) if t["type"] == "page")
        self.socket = connect(target["webSocketDebuggerUrl"], max_size=None)
        self.next_id = 0
        self.requests: list[str] = []
        self.console: list[str] = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", "")) for a in params["args"]))
        elif method == "Log.entryAdded":
            self.console.append(params["entry"].get("text", ""))

    def call(self, method: str, **params):
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.call("Network.setCookie", name=name, value=value, url=url)

    def goto(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait for the new document's load event (until then the page's DOM is
        still the previous document's)."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv(timeout=timeout))
            self._event(message)
            if message.get("method") == "Page.loadEventFired":
                return
        raise TimeoutError(f"{url}: no load event within {timeout} s")

    def evaluate(self, expression: str, *, wait: bool = False):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=wait
        )
        return result.get("result", {}).get("value")

    def image_stats(self, png: bytes) -> dict:
        """Grey-level standard deviation and number of distinct colours of a PNG, decoded by the
        browser itself (a canvas): a blank or single-colour screenshot has almost none of either."""
        script = """new Promise((resolve, reject) => {
          const img = new Image();
          img.onload = () => {
            const canvas = document.createElement('canvas');
            canvas.width = img.width; canvas.height = img.height;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const px = ctx.getImageData(0, 0, img.width, img.height).data;
            let sum = 0, squares = 0; const colours = new Set();
            for (let i = 0; i < px.length; i += 4) {
              const grey = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
              sum += grey; squares += grey * grey;
              if (colours.size < 100000) colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
            }
            const n = px.length / 4, mean = sum / n;
            resolve({width: img.width, height: img.height, colours: colours.size,
                     stddev: Math.sqrt(Math.max(squares / n - mean * mean, 0))});
          };
          img.onerror = () => reject(new Error('not a PNG'));
          img.src = 'data:image/png;base64,%s';
        })"""
        return self.evaluate(script % base64.b64encode(png).decode(), wait=True)

    def wait_for(self, expression: str, timeout: float = 60, settle: float = 1.0):
        """Evaluate ``expression`` until it returns a value with ``ready`` true; the last value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if isinstance(value, dict) and value.get("ready"):
                time.sleep(settle)  # let the charts' animations end
                return self.evaluate(expression)
            time.sleep(0.5)
        return value

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        try:
            if getattr(self, "socket", None):
                self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
