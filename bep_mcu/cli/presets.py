"""``bep-mcu presets``: the presets of ``train --preset`` (bep_mcu/settings.py), every value."""

from __future__ import annotations

import click

from bep_mcu.cli.common import emit, json_option
from bep_mcu.settings import PRESETS, SETTINGS, show


def describe(name: str) -> dict:
    """A preset's value of every setting (``values``) and why for those it sets (``reasons``);
    the others keep the project's defaults (None: decided from the data)."""
    preset = PRESETS[name]
    values = {s.name: preset.values.get(s.name, (s.default, None))[0] for s in SETTINGS if s.name != "preset"}
    return {"name": name, "summary": preset.summary, "values": {k: list(v) if isinstance(v, tuple) else v
                                                                 for k, v in values.items()},
            "reasons": {**{k: "not stated: the project's default" for k in preset.unstated},
                        **{k: why for k, (_, why) in preset.values.items()}}}


def _human(d: dict) -> str:
    lines = []
    for p in d["presets"]:
        lines.append(f"{p['name']}: {p['summary']}")
        for name, value in p["values"].items():
            why = p["reasons"].get(name, "the user's choice")
            shown = "(from the data)" if value is None else show(tuple(value) if isinstance(value, list) else value)
            lines.append(f"  --{name.replace('_', '-'):<16} {shown:<16} {why}")
    return "\n".join(lines)


@click.command()
@json_option
def presets(as_json) -> None:
    """List the presets of train --preset: every setting's value and, where the preset sets it, why."""
    emit({"presets": [describe(name) for name in PRESETS]}, as_json, _human)
