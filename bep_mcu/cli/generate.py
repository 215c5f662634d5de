"""``bep-mcu generate``: write the C99 training code of a model into a directory."""

from __future__ import annotations

import click

from bep_mcu.cgen.codegen import check_name, generate as generate_c, with_hidden_bits
from bep_mcu.cli.common import emit, json_option, load_model, model_argument


@click.command()
@model_argument
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--name", default="net", help="Network name used in C symbols (bep_<name>_*).")
@click.option("--hidden-bits", type=int, default=None, help="8 or 16 [default: the model's].")
@json_option
def generate(model_path, out_dir, name, hidden_bits, as_json) -> None:
    """Generate self-contained C99 training code (runtime + tables + wrappers) for MODEL."""
    check_name(name)
    gen = generate_c(with_hidden_bits(load_model(model_path), hidden_bits), out_dir, name)
    kinds = gen.plan.bytes_by_kind()
    result = {"out": str(gen.directory), "name": gen.name, "files": gen.files, "config_hash": gen.config_hash,
              "state_bytes": gen.plan.state_bytes, **{f"{k}_bytes": v for k, v in kinds.items()}}
    emit(result, as_json, lambda d: f"wrote {len(d['files'])} files to {d['out']} (network '{d['name']}', "
                                    f"state {d['state_bytes']} B, config {d['config_hash']})")
