"""Render /docs of the lookup and real-time APIs in headless Chromium with no internet; save screenshots.

    make up   # then:
    .venv/bin/python scripts/docs_screenshots.py [--lookup URL] [--realtime URL] [--out docs/screenshots]

Chromium (Debian's `chromium` package) runs with every host name but the API's own unresolvable, so
a page that needs a CDN renders blank. For each API it checks that the rendered page lists the
operations (Swagger UI's operation blocks) and saves `<name>-docs.png` under --out. Exits 1 naming
the page that failed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse


def chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on `url`; only the URL's own host resolves (the network is off for everything else)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("no chromium: install Debian's package (apt-get install chromium)")
    host = urlparse(url).hostname
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
             "--window-size=1280,1000", "--virtual-time-budget=15000", *args, url],
            capture_output=True, text=True, timeout=120)


def check(name: str, base: str, out: Path) -> list[str]:
    """Render base/docs; the operation paths it lists (empty when it rendered none)."""
    url = f"{base.rstrip('/')}/docs"
    dom = chromium(url, "--dump-dom").stdout
    operations = sorted(set(re.findall(r'class="opblock-summary-path"[^>]*data-path="([^"]+)"', dom)))
    shot = out / f"{name}-docs.png"
    chromium(url, f"--screenshot={shot}")
    print(f"{name}: {url} lists {len(operations)} operations {operations}; screenshot {shot}")
    return operations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lookup", default="http://127.0.0.1:8000")
    parser.add_argument("--realtime", default="http://127.0.0.1:8001")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    failed = [name for name, base in (("lookup", args.lookup), ("realtime", args.realtime))
              if not check(name, base, args.out)]
    if failed:
        sys.exit(f"no operations rendered on /docs of: {', '.join(failed)}")


if __name__ == "__main__":
    main()
