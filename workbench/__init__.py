"""Multilingual Representation Workbench: record, analyse, fine-tune and compare LLMs' languages.

The library never imports Streamlit (HOUSE_STYLE 1); heavy modules (torch, nnsight) are
imported by the submodules that need them, so `import workbench` stays light.
"""

__version__ = "0.1.0"
