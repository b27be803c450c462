"""The Compare page's outcome tabs: Scores and Outputs of any number of model states.

Widgets → an `eval_scores` figure spec → one background evaluation job (the one job system;
every suite computed once and kept in the store) → the registry's view from the store.
The page never blocks: it shows the job's progress, rate, ETA and Cancel until it is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages._ui.figure import show_figure
from app_pages._ui.recording import estimate_text, job_panel
from app_pages._ui.state import guard
from app_pages._ui.views import view
from workbench.config import ModelSpec
from workbench.evaluation import DecodingSpec, filter_generations, side_by_side
from workbench.evaluation.jobs import eval_job_key, start_evaluation
from workbench.evaluation.run import both_directions, missing_suites, planned_work
from workbench.evaluation.tables import MIN_N_INTERVAL, score_formats, score_table
from workbench.examples import DataSpec
from workbench.jobs.warm import WARM
from workbench.models import same_base
from workbench.recipes.settings import Settings

SUITES = ("translation", "loss", "lm-eval:tatoeba_choice")
SUITE_HELP = ("translation: greedy outputs, chrF++/BLEU, language fidelity · loss: held-out loss both ways "
              "and English perplexity · lm-eval:tatoeba_choice: the offline 4-way translation choice task")


def chosen_states(options: dict[str, dict[str, Any]], default: list[str]) -> dict[str, ModelSpec]:
    """The states the user picks (any number), by label."""
    ids = list(options)
    picked = st.multiselect("States", ids, default=list(dict.fromkeys(default)), key="cmp_eval_states",
                            bind="query-params",
                            format_func=lambda x: options[x]["label"],
                            help="Any number of states: the base, every tuned state, other bases.")
    return {_short(options[x], x): ModelSpec.from_dict(options[x]["model"]) for x in picked}


def _short(option: dict[str, Any], key: str) -> str:
    if option.get("short"):  # a variant of a tuned state (its inference options) names itself
        return str(option["short"])
    return f"{option.get('method', 'state')}-{key[-6:]}" if "job_id" in option else Path(
        option["model"]["source"]).name


def outcome_spec(s: Settings, states: dict[str, ModelSpec], data: dict[str, Any], directions: list[str],
                 suites: list[str], limit: int | None, reference: str) -> dict[str, Any]:
    """The registry spec of the outcomes view (the first state is the spec's model)."""
    labels, specs = list(states), list(states.values())
    langs = list(dict.fromkeys(x for d in directions for x in d.split(":")))
    return s.figure_spec("eval_scores", {"others": [m.to_dict() for m in specs[1:]], "labels": labels,
                                         "suites": suites, "data": data, "directions": directions,
                                         "limit": limit, "reference": reference},
                         model=specs[0], langs=langs)


def _default_states(options: dict[str, dict[str, Any]], a: str, b: str) -> list[str]:
    """Each tuned state of A, B with its own base first (what a fine-tune is measured against).

    A state that is neither tuned nor a tuned state's base is not evaluated by default (it may
    be a large model that is not even converted yet); the user can add any state.
    """
    out: list[str] = []
    for x in (a, b):
        if "job_id" in options[x] or options[x].get("intervened"):  # tuned or intervened: with its base
            base = ModelSpec.from_dict({**options[x]["model"], "artifact": None, "interventions": []})
            out += [k for k, o in options.items() if "job_id" not in o and not o.get("intervened")
                    and same_base(ModelSpec.from_dict(o["model"]), base)][:1]
            out.append(x)
    return list(dict.fromkeys(out)) or [a, b]


def outcomes(s: Settings, options: dict[str, dict[str, Any]], a: str, b: str) -> tuple[Any, Any] | None:
    """Pick states, data and suites; run (or join) the evaluation; return (figure and table, generations)."""
    states = chosen_states(options, _default_states(options, a, b))
    # a tuned state (its own held-out split) or a kept intervened state (Tatoeba of its language) says the data
    tuned = [o for k, o in options.items() if "data" in o and _short(o, k) in states]
    if len(states) < 1 or not tuned:
        st.info("Outcomes are scored on a fine-tune's own held-out split (or an intervened state's Tatoeba "
                "language): pick at least one tuned or intervened state.", icon=":material/info:")
        return None
    t = tuned[0]
    langs = t["languages"]
    pivot = t.get("pivot") if t.get("pivot") in langs else langs[0]
    directions = [f"{x}:{y}" for x, y in both_directions([f"{pivot}:{o}" for o in langs if o != pivot])]
    c = st.columns([3, 2, 2], vertical_alignment="bottom")
    suites = c[0].multiselect("Suites", SUITES, default=["translation", "loss"], key="cmp_eval_suites",
                              bind="query-params",
                              help=SUITE_HELP)
    limit = c[1].number_input("Held-out units (empty: all)", 1, None, None, key="cmp_eval_limit", bind="query-params")
    reference = c[2].selectbox("Reference", list(states), key="cmp_eval_ref", bind="query-params",
                               help="Differences are state − this.")
    if not suites:
        st.info("Choose at least one suite.")
        return None
    data = DataSpec.from_dict(dict(t["data"]))
    st.caption(f"Held-out part of `{Path(str(data.source)).name}` (the data of {t['label']}): units no tuned "
               f"state trained on · directions {', '.join(directions)}.")
    spec = outcome_spec(s, states, data.to_dict(), directions, suites, int(limit) if limit else None, reference)
    pairs = both_directions(directions)
    lim = int(limit) if limit else None
    key = eval_job_key(states, suites, data, pairs, lim, _decoding())
    with guard("the evaluation"):
        todo = {lab: missing_suites(m, suites, data, directions=pairs, limit=lim) for lab, m in states.items()}
        if any(todo.values()):
            job = WARM.get(key)
            snap = job.snapshot() if job is not None else None
            if snap is None or not snap.running:
                st.info("Not evaluated yet: " + "; ".join(f"**{lab}** {', '.join(v)}" for lab, v in todo.items() if v)
                        + ". It runs in the background (leave the page and come back).", icon=":material/info:")
                units = sum(planned_work(m, suites, data, directions=pairs, limit=lim)[1] for m in states.values())
                st.caption("Evaluation: " + estimate_text("evaluate", next(iter(states.values())), units, "examples")
                           + (f" · {lim} held-out unit(s) per direction" if lim else " · every held-out unit"))
                if st.button("Evaluate", type="primary", icon=":material/play_arrow:", key=f"eval-{key}"):
                    start_evaluation(states, suites, data, directions=pairs, limit=lim, rerun_done=True)
                    st.rerun()
            job_panel(key)
            return None
        fig, table, info, extra = view(spec)
        for flag in info.get("flags", []):
            st.warning(flag, icon=":material/warning:")
        return (fig, table, extra["scores"], spec), extra["generations"]
    return None


def _decoding() -> DecodingSpec:
    return DecodingSpec()  # the default decoding: what the spec's view evaluates with


def scores_tab(s: Settings, options: dict[str, dict[str, Any]], a: str, b: str) -> None:
    """Scores with intervals per state, and the differences to the reference."""
    got = outcomes(s, options, a, b)
    if got is None:
        return
    (fig, table, _, spec), _ = got
    show_figure(fig, "compare-scores", table, height=520, spec=spec)
    # n per row, each state's interval as text (or why it has none); numbers stay numbers, shown
    # by score_formats ("—" for missing, no "−0.00")
    scores = score_table(table, reference=spec["params"]["reference"])
    st.dataframe(scores.style.format(score_formats(scores), na_rep="—"), hide_index=True)
    st.caption(f"n: held-out sentences (lm-eval: items) per row; brackets: 95% bootstrap interval, shown from "
               f"n = {MIN_N_INTERVAL} on. Δ columns: state − reference. chrF++/BLEU via sacrebleu (signatures in "
               "the export's manifest); "
               "fidelity = share of outputs identified as the target language (py3langid, validated on the "
               "references: languages it cannot identify are flagged, not scored).")


def outputs_tab(s: Settings, options: dict[str, dict[str, Any]], a: str, b: str) -> None:
    """Generations side by side with the reference, per-sentence chrF and the identified language."""
    got = outcomes(s, options, a, b)
    if got is None:
        return
    _, generations = got
    if generations.empty:
        st.info("Outputs come from the translation suite: add it above.", icon=":material/info:")
        return
    wide = side_by_side(generations)
    c = st.columns([2, 2, 2])
    direction = c[0].selectbox("Direction", ["all", *pd.unique(wide["direction"])], key="cmp_out_dir",
                               bind="query-params")
    disagree = c[1].toggle("Only disagreements", key="cmp_out_disagree", bind="query-params")
    off = c[2].toggle("Only off-target", key="cmp_out_off", bind="query-params",
                      help="Some state answered in the wrong language.")
    shown = filter_generations(wide, direction=None if direction == "all" else direction,
                               only_disagreements=disagree, only_off_target=off)
    st.dataframe(shown, hide_index=True, height=520)
    st.caption(f"{len(shown)} of {len(wide)} held-out sentences.")
