"""Drives the portal page in real headless Chromium through the DevTools protocol, the way a person
would: focus a box, type, press the button, read what the page shows.

Run: python portal_driver.py <portal url>, then send commands on stdin, one per line:
  time <layout>     type a layout into the time box and submit it
  calc <formula>    type a formula into the calculator box and submit it
  calc-example <formula>  click the example button showing that formula under the calculator box
Each command prints one JSON line: {"result": ..., "meta": ..., "instance": ..., "error": bool,
"input": <the box's text>}.
The first line printed is {"ready": true} once the page has loaded. End of input closes the browser.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client, pinned in scripts/setup


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium found: scripts/setup installs Debian's chromium")


class Page:
    def __init__(self, url):
        self.profile = tempfile.mkdtemp(prefix="ecssd-chromium-")
        self.browser = subprocess.Popen(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.time() + 60
        while port is None and time.time() < deadline:
            line = self.browser.stderr.readline()
            if not line and self.browser.poll() is not None:
                sys.exit("Chromium exited before it listened")
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                port = int(found.group(1))
        if port is None:
            sys.exit("Chromium did not open its DevTools port within 60 s")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t.get("type") == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=30)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && !!document.getElementById('calc-form')")

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"waited {timeout} s for {expression}")

    def submit(self, box, text):
        def act():
            self.evaluate(
                f"(() => {{ const i = document.getElementById('{box}-input'); i.focus(); i.select(); }})()")
            self.call("Input.insertText", text=text)
            self.evaluate(f"document.querySelector('#{box}-form button').click()")
        return self.answer(box, act)

    def example(self, box, text):
        """Clicks the example button under `box` whose label is `text`."""
        def act():
            clicked = self.evaluate(
                f"(() => {{ const b = [...document.querySelectorAll('#{box}-examples button')]"
                f".find(b => b.textContent === {json.dumps(text)}); if (b) b.click(); return !!b; }})()")
            if not clicked:
                raise LookupError(f"no example button {text!r} under the {box} box")
        return self.answer(box, act)

    def answer(self, box, act):
        """Does `act`, waits for the page to show the answer in `box`, and reads what it shows."""
        before = self.evaluate(f"document.getElementById('{box}-result').dataset.done || ''")
        act()
        self.wait_for(f"(document.getElementById('{box}-result').dataset.done || '') !== {json.dumps(before)}")
        return {
            "result": self.evaluate(f"document.getElementById('{box}-result').textContent"),
            "meta": self.evaluate(f"document.getElementById('{box}-meta').textContent"),
            "instance": self.evaluate(f"document.getElementById('{box}-result').dataset.instance"),
            "error": self.evaluate(f"document.getElementById('{box}-result').classList.contains('error')"),
            "input": self.evaluate(f"document.getElementById('{box}-input').value"),
        }

    def close(self):
        self.browser.kill()
        self.browser.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    page = Page(sys.argv[1])
    try:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command, _, text = line.rstrip("\n").partition(" ")
            if command in ("time", "calc"):
                print(json.dumps(page.submit(command, text)), flush=True)
            elif command == "calc-example":
                try:
                    print(json.dumps(page.example("calc", text)), flush=True)
                except LookupError as e:
                    print(json.dumps({"failure": str(e)}), flush=True)
            else:
                print(json.dumps({"failure": f"unknown command {command!r}"}), flush=True)
    finally:
        page.close()


if __name__ == "__main__":
    main()
