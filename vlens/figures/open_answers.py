"""The report's section on open-ended answers (`vlens run open`, vlens.experiments.open_protocol)."""

from __future__ import annotations

from vlens.figures.style import fmt_value


def open_section(settings: dict, summary: dict) -> list[str]:
    """The report's "Open-ended answers" section (`vlens run open`): each configuration's
    open-ended accuracy, its 95% interval and its ratio to the open-ended clean accuracy, beside
    the multiple-choice accuracy of the same configuration.

    Args:
        settings: the run's settings (its `open` entry names prompt, match, decoding).
        summary: `analysis.summarise` of the run's records.

    Returns:
        Markdown lines (none when the run has no open-ended records)."""
    names = [k for k in summary if k.startswith("open/")]
    if not names:
        return []
    o = settings.get("open", {})
    lines = [
        "",
        "## Open-ended answers",
        "",
        f"Generated answers (prompt `{o.get('prompt')}`, match `{o.get('match')}`, at most {o.get('max_new_tokens')} "
        f"tokens, decoding {o.get('decoding')}), the knockout applied at every generated step; ratio: to the "
        "open-ended clean accuracy.",
        "",
        "| configuration | multiple choice | open-ended | 95% CI | ratio | 95% CI |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        s, mc = summary[name], summary.get(name.removeprefix("open/"))
        lines.append(
            f"| {name.removeprefix('open/')} | {fmt_value(mc['accuracy'], True) if mc else '–'} "
            f"| {fmt_value(s['accuracy'], True)} | {fmt_value(s['accuracy_ci'][0], True)}–{fmt_value(s['accuracy_ci'][1], True)} "
            f"| {fmt_value(s['ratio'])} | {fmt_value(s['ratio_ci'][0])}–{fmt_value(s['ratio_ci'][1])} |"
        )
    return lines
