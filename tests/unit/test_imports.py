"""The library never imports Streamlit (HOUSE_STYLE 1)."""

import subprocess
import sys


def test_library_does_not_import_streamlit():
    code = ("import sys, workbench, workbench.models, workbench.tracing, workbench.store, workbench.corpus, "
            "workbench.session, workbench.cli, workbench.analysis; "
            "bad = [m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
