"""Streamlit entry point of the Multilingual Representation Workbench: routing only.

    streamlit run app.py

Pages live in app_pages/; computation in the `workbench` library (HOUSE_STYLE 1, 9).
"""

import logging
import os

import streamlit as st

st.set_page_config(page_title="Multilingual Representation Workbench", page_icon=":material/translate:",
                   layout="wide", initial_sidebar_state="expanded")

# Library messages (and recording tracebacks from worker threads) go to the server log.
_log = logging.getLogger("workbench")
if not _log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(os.environ.get("WORKBENCH_LOG_LEVEL", "INFO").upper())
    _log.propagate = False

st.navigation({
    "Record": [
        st.Page("app_pages/setup.py", title="Setup", icon=":material/tune:", default=True),
    ],
    "Views": [
        st.Page("app_pages/layer_profile.py", title="Layer profile", icon=":material/stacked_line_chart:"),
        st.Page("app_pages/representation_map.py", title="Representation map", icon=":material/scatter_plot:"),
        st.Page("app_pages/language_subspaces.py", title="Language subspaces", icon=":material/call_split:"),
        st.Page("app_pages/neurons.py", title="Neurons", icon=":material/hub:"),
        st.Page("app_pages/layer_predictions.py", title="Layer predictions", icon=":material/translate:"),
        st.Page("app_pages/analyses.py", title="Every analysis", icon=":material/apps:"),
    ],
    "Tune": [
        st.Page("app_pages/finetune.py", title="Fine-tune", icon=":material/model_training:"),
        st.Page("app_pages/intervene.py", title="Intervene", icon=":material/science:"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ],
}).run()
