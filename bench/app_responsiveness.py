"""Is the app responsive while it records, and does a model load once? (issue 20's speed section)

Runs the same scenario in headless Chromium (Playwright) against two checkouts: the
product (this tree) and a baseline revision (default: the house before the model worker,
where recordings ran as threads inside the Streamlit process), each with a fresh store and
the same converted model. For each it measures:

- `curl /` and a widget round trip (change "Limit units", wait until the page shows the new
  choice) with no job running, then the same while a recording runs, plus a new tab's load;
- the first model load in the app (the "loading …" phase the page shows; for the product
  also the worker's own measurement) against the same load from the CLI (`models.load` in a
  fresh process, as `workbench record` does);
- click → first sentence computed for a second recording of the same model (a new corpus
  choice, so every sentence is computed).

    python bench/app_responsiveness.py [--baseline-rev 667379d] [--langs en,de,fr,zh,sw,ja,ar,hi] [--limit 50]

Prints one table per checkout and the ratios. Needs Debian's Chromium (`/usr/bin/chromium`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PROGRESS = re.compile(r"(\d+)/(\d+) sentences")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path, cache: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "WORKBENCH_CACHE": str(cache), "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=root,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"streamlit did not start from {root} (log: {log})")


def curl(url: str) -> float:
    t = time.perf_counter()
    with urllib.request.urlopen(url + "/", timeout=600) as r:
        r.read()
    return time.perf_counter() - t


def settle(page, timeout_ms: float = 600_000) -> None:
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout_ms)


def shows_limit(page, value: int, timeout_ms: float = 600_000) -> None:
    """Wait until the Store section shows `value` units per language (the page's run with it finished)."""
    metric = page.locator('[data-testid="stMetric"]', has_text="Units per language")  # display: contents
    metric.locator('[data-testid="stMetricValue"]', has_text=re.compile(rf"^{value}$")).first.wait_for(
        timeout=timeout_ms)


def shows_store(page, timeout_ms: float = 600_000) -> None:
    """Wait until the Store section shows its metrics (any value: the baseline app ignores the URL's choices)."""
    metric = page.locator('[data-testid="stMetric"]', has_text="Units per language")
    metric.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=timeout_ms)


def set_limit(page, value: int) -> float:
    """Change "Limit units" and wait until the page shows it (the metric 'Units per language'); seconds."""
    box = page.get_by_role("spinbutton", name="Limit units (optional)")
    t = time.perf_counter()
    box.fill(str(value))
    box.press("Enter")
    shows_limit(page, value)
    return time.perf_counter() - t


def progress_done(page) -> int:
    best = 0
    for text in page.locator('[data-testid="stProgress"]').all_inner_texts():
        m = PROGRESS.search(text)
        if m:
            best = max(best, int(m.group(1)))
    return best


def loading_shown(page) -> bool:
    return any("loading" in t.lower() for t in page.locator('[data-testid="stProgress"]').all_inner_texts())


def click_record(page) -> float:
    page.get_by_role("button", name=re.compile(r"^Record")).first.click()
    return time.perf_counter()


def watch(page, t_click: float, timeout: float = 1800) -> dict:
    """After a Record click: when loading was first/last shown and when the first sentence was counted."""
    out: dict = {"loading_from": None, "loading_to": None, "first": None, "computing": None}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.perf_counter() - t_click
        try:
            if loading_shown(page):
                out["loading_from"] = out["loading_from"] if out["loading_from"] is not None else now
                out["loading_to"] = now
            bars = page.locator('[data-testid="stProgress"]').all_inner_texts()
            if out["computing"] is None and bars and not any("loading" in b.lower() for b in bars):
                out["computing"] = now  # a progress bar past loading: the job computes (its batch still running)
            if progress_done(page) > 0 or finished(page):  # a short run can finish between two looks
                out["first"] = now
                return out
        except Exception:  # noqa: BLE001 - the page is rerunning; look again
            pass
        page.wait_for_timeout(100)
    return out


def finished(page) -> bool:
    return page.get_by_text(re.compile(r"Recorded \d+ languages")).count() > 0


def wait_stored(page, timeout_ms: float = 1_800_000) -> None:
    page.get_by_text(re.compile(r"Recorded \d+ languages|Everything for this choice is in the store")).first.wait_for(
        timeout=timeout_ms
    )


def cli_load_seconds(root: Path, cache: Path, model: str | None) -> float:
    code = (
        "import time; from workbench import models; from workbench.config import ModelSpec; "
        f"s = ModelSpec(source={model!r}) if {model!r} else ModelSpec(); "
        "t = time.perf_counter(); models.load(s); print(time.perf_counter() - t)"
    )
    env = {**os.environ, "WORKBENCH_CACHE": str(cache), "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def scenario(name: str, root: Path, work: Path, args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    cache = work / f"cache-{name}"
    cache.mkdir()
    models_dir = REPO / "cache" / "models"
    if models_dir.is_dir():
        (cache / "models").symlink_to(models_dir)  # the converted model, shared; the store is fresh
    proc, url = serve(root, cache, work / f"{name}.log")
    res: dict = {"name": name}
    query = f"?langs={args.langs}&limit={args.limit}" + (f"&model={args.model}" if args.model else "")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url + "/" + query)
            shows_store(page)
            set_limit(page, args.limit)  # the baseline app reads no choice from the URL
            settle(page)
            res["curl idle"] = [curl(url) for _ in range(5)]
            res["widget idle"] = [set_limit(page, args.limit - 1 - i % 2) for i in range(4)]
            set_limit(page, args.limit)
            settle(page)
            print(f"[{name}] idle probes done; recording", flush=True)
            t_click = click_record(page)
            first = watch(page, t_click)  # the load happens here, in the app
            res["first click->first sentence"] = first["first"]
            res["app load (shown)"] = (
                None if first["loading_from"] is None else first["loading_to"] - first["loading_from"]
            )
            res["curl busy"], res["widget busy"] = [], []
            for i in range(args.probes):
                res["curl busy"].append(curl(url))
                res["widget busy"].append(set_limit(page, args.limit - 1 - i % 2))
            t = time.perf_counter()
            tab = browser.new_page(viewport={"width": 1440, "height": 1000})
            tab.goto(url + "/" + query)
            shows_store(tab)
            res["new tab busy"] = time.perf_counter() - t
            tab.close()
            set_limit(page, args.limit)
            wait_stored(page)
            set_limit(page, args.limit + 10)  # a new corpus choice of the same model: all computed
            settle(page)
            print(f"[{name}] first recording stored; a second corpus choice", flush=True)
            t_click = click_record(page)
            second = watch(page, t_click)
            res["second click->first sentence"] = second["first"]
            res["second click->computing shown"] = second["computing"]
            wait_stored(page)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    rates = cache / "worker" / "rates.json"
    if rates.is_file():
        loads = json.loads(rates.read_text()).get("loads", {})
        res["app load (worker)"] = next(iter(loads.values()), [None])[0]
    res["cli load"] = cli_load_seconds(root, cache, args.model)
    left = subprocess.run(["pgrep", "-f", f"workbench.warm {cache}"], capture_output=True, text=True).stdout.split()
    res["worker left running"] = len(left)
    return res


def show(res: dict) -> None:
    print(f"\n## {res['name']}")
    for k, v in res.items():
        if k == "name" or v is None:
            continue
        if isinstance(v, list):
            print(f"  {k:38s} median {statistics.median(v):7.2f} s  max {max(v):7.2f} s  (n={len(v)})")
        elif isinstance(v, float):
            print(f"  {k:38s} {v:7.2f} s")
        else:
            print(f"  {k:38s} {v}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-rev", default="667379d", help="git revision of the baseline (threads in the app)")
    ap.add_argument("--model", default=None, help="model source (default: the bundled Gemma-3-270M)")
    ap.add_argument("--langs", default="en,de,fr,zh,sw,ja,ar,hi")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--probes", type=int, default=4, help="curl + widget probes while the first recording runs")
    ap.add_argument("--only", choices=["product", "baseline"], default=None)
    args = ap.parse_args()
    if not Path(CHROMIUM).is_file():
        print(f"Chromium not found at {CHROMIUM}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        work = Path(tmp)
        results = []
        if args.only != "product":
            base = work / "baseline"
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.baseline_rev],
                check=True,
                capture_output=True,
            )
            try:
                results.append(scenario("baseline", base, work, args))
            finally:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)
        if args.only != "baseline":
            results.append(scenario("product", REPO, work, args))
        print(f"load average at the end: {os.getloadavg()}")
        summary(results)
    return 0


def summary(results: list[dict]) -> None:
    for r in results:
        show(r)
    if len(results) == 2:
        b, p = results
        for k in ("curl busy", "widget busy"):
            print(f"  ratio {k}: baseline/product = {statistics.median(b[k]) / statistics.median(p[k]):.1f}")
        for k in ("second click->first sentence", "new tab busy"):
            if b.get(k) and p.get(k):
                print(f"  ratio {k}: baseline/product = {b[k] / p[k]:.1f}")
    for r in results:
        load = r.get("app load (worker)") or r.get("app load (shown)")
        if load:
            print(f"  {r['name']}: first load in the app / from the CLI = {load / r['cli load']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
