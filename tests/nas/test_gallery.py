"""hwnas pareto gallery, opened in a real headless Chromium: every sample loads and is an animation
(a screenshot lands in the test artefacts: tests/artifacts/gallery.png)."""
import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.nas.deploy_helpers import ARCHS, STORED, make_campaign, perturbed_temporal_state, shared_workdir

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(n)), None)

# Run in the page through the DevTools protocol (real time, the promise awaited): whether
# every sample <img> loaded, and each file decoded by the browser's own image decoder
# (WebCodecs ImageDecoder): an animated track, its frame count and how many frames differ.
# (A canvas cannot tell: drawImage always draws an animated image's first frame.)
PROBE = """
(async () => {
  while (![...document.images].every(i => i.complete)) await new Promise(ok => setTimeout(ok, 50));
  async function frames(src) {
    const data = await (await fetch(src, {cache: 'no-store'})).arrayBuffer();
    const dec = new ImageDecoder({data, type: 'image/gif'});
    await dec.tracks.ready;
    const track = dec.tracks.selectedTrack;
    const pixels = [];
    for (let k = 0; k < track.frameCount; k++) {
      const {image} = await dec.decode({frameIndex: k});
      const c = new OffscreenCanvas(image.displayWidth, image.displayHeight);
      const g = c.getContext('2d'); g.drawImage(image, 0, 0); image.close();
      pixels.push(g.getImageData(0, 0, c.width, c.height).data.join(','));
    }
    return {animated: track.animated, frameCount: track.frameCount, distinct: new Set(pixels).size};
  }
  const out = [];
  for (const img of document.querySelectorAll('img.sample')) {
    const r = {src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth};
    try { Object.assign(r, await frames(img.src)); } catch (e) { r.error = String(e); }
    out.push(r);
  }
  return out;
})()
"""


class Browser:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (the DevTools protocol on
    file descriptors 3 and 4, NUL-delimited JSON): no driver, no extra package."""

    def __init__(self, width=1100, height=700):
        import fcntl
        import os

        ours_r, their_w = os.pipe()
        their_r, ours_w = os.pipe()
        hi_r, hi_w = fcntl.fcntl(their_r, fcntl.F_DUPFD, 10), fcntl.fcntl(their_w, fcntl.F_DUPFD, 10)

        def fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--hide-scrollbars", "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4, hi_r, hi_w), preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (their_r, their_w, hi_r, hi_w):
            os.close(fd)
        self.rfile, self.wfile = os.fdopen(ours_r, "rb"), os.fdopen(ours_w, "wb")
        self.size, self.next_id, self.buffer, self.session = (width, height), 0, b"", None

    def call(self, method, params=None, session=True, timeout=60):
        import os
        import select
        import time as _time

        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.wfile.write(json.dumps(msg).encode() + b"\0")
        self.wfile.flush()
        deadline = _time.time() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - _time.time()
            if left <= 0 or not select.select([self.rfile], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} in {timeout} s")
            chunk = os.read(self.rfile.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buffer += chunk

    def open(self, url):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        w, h = self.size
        self.call("Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})
        self.evaluate("new Promise(ok => { const f = () => document.readyState === 'complete' ? ok(1) "
                      ": setTimeout(f, 50); f(); })")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path):
        import base64

        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"]))

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=10)
        except Exception:  # noqa: BLE001 - it is going away anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    workdir = shared_workdir(tmp_path_factory)
    # budgets relative to the backbone, as the README's main job states them
    camp = make_campaign(tmp_path_factory.mktemp("gcamp") / "c", workdir, perturbed_temporal_state(workdir, STORED),
                         relative=True)
    out = tmp_path_factory.mktemp("gallery") / "gallery.html"
    from nas.cli import main

    assert main(["pareto", "gallery", str(camp.root), "--out", str(out), "--prompt", "a red circle moving left fast",
                 "--prompt", "a green cross staying still", "--steps", "2", "--train-steps", "1", "--json"]) == 0
    return out


def test_the_page_lists_every_front_point_with_its_samples_and_costs(gallery):
    page = gallery.read_text()
    files = sorted((gallery.parent / "gallery_files").glob("*.gif"))
    assert len(files) == len(ARCHS) * 2
    for arch, (q, lat, mem) in ARCHS.items():
        assert f"{q:.5f}" in page and f"{lat:.3f}" in page
    assert "campaign weights" in page and "briefly trained here" in page
    # feasibility judged by the budgets the search resolved: only the 200 ms network is over 100 ms
    assert page.count("<td>no</td>") == 1 and page.count("<td>yes</td>") == len(ARCHS) - 1
    assert all(Image.open(f).n_frames == 4 for f in files)
    # the same noise for every architecture: samples differ only through the weights
    assert len({f.read_bytes() for f in files}) == len(files)


def _serve(root: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary on this machine (apt-get install chromium)")
def test_every_sample_loads_and_plays_in_headless_chromium(gallery):
    sources = re.findall(r'<img class="sample" src="([^"]+)"', gallery.read_text())
    assert len(sources) == len(ARCHS) * 2
    server = _serve(gallery.parent)
    browser = Browser()
    try:
        browser.open(f"http://127.0.0.1:{server.server_address[1]}/gallery.html")
        report = browser.evaluate(PROBE)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "gallery.png"
        browser.screenshot(shot)
    finally:
        browser.close()
        server.shutdown()
    assert [r["src"] for r in report] == sources
    assert all(r["loaded"] and r["width"] == 128 for r in report), report
    # the browser decodes each as an animated GIF of 4 frames that differ (the samples move)
    assert all(r.get("animated") and r["frameCount"] == 4 and r["distinct"] > 1 for r in report), report
    assert Image.open(shot).size == (1100, 700)
