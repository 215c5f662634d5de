"""QAT and QAT + batch norm (the benchmark's grid, weight decay 0) on the bits fit's RNN falls back to
when it sits at chance: thresholds per time point (docs/research/untuned-data.md §4.2).

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/qat-per-point.py OUT.jsonl spectra:rnn,UnitTest:rnn
"""
import json, sys
from bep_mcu import qat
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
out = sys.argv[1]
for key in sys.argv[2].split(","):
    name, kw = parse_config(key)
    kw = {**kw, "binarize": "thermometer:8:point"}
    data = load_dataset(name)
    for bn in (False, True):
        r = qat.tuned_qat(kw, data, 3, batch_norm=bn, weight_decays=(0.0,))
        rec = {"set": key, "binarize": kw["binarize"], "batch_norm": bn, "scores": r["scores"], "chosen": r["chosen"],
               "seconds": round(r["seconds"], 1)}
        print(json.dumps(rec), flush=True)
        with open(out, "a") as fh:
            print(json.dumps(rec), file=fh)
