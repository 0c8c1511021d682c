"""What fine-tuning costs and scores, in fp32 or bf16, with or without min_delta, in one process.

    python benchmarks/finetune_cost.py WORKSPACE... [--rounds 1] [--configs fp32:0 bf16:0 bf16:0.001 bf16:0.001:1]

Each WORKSPACE is a benchmark workspace (python -m pipeline.benchmark --work W: W/<dataset>.defaults)
whose features and dense head are already made; it is read, never written. For each configuration,
precision:min_delta or precision:min_delta:patience, fine_tune runs the shipped finetune_top row there,
the configurations taking turns round after round, so that a shared machine's load falls on all of them
alike. Printed per run: the fit's seconds, its epochs, its accuracy on the selection images (what the
report chooses on) and on the held-out split (reported only: nothing here is chosen on it).
"""
import argparse
import os
import sys
from pathlib import Path

from tabulate import tabulate

from pipeline.config import load_params
from pipeline.modeling import finetune


def run(workspace, precision, min_delta, patience=None):
    params = load_params(workspace / "params.yaml")
    settings = dict(params["finetune"]["finetune_top"])
    head = settings.pop("head")
    settings["min_delta"] = min_delta
    if patience is not None:
        settings["patience"] = patience
    evaluate = params["evaluate"]
    _, metrics, _, _ = finetune.fine_tune(head, settings, params["data"]["dir"], evaluate["seed"], evaluate["tta"],
                                          selection=evaluate["selection"], precision=precision)
    return {"fit s": round(metrics["fit_seconds"], 1), "epochs": metrics["epochs"],
            "selection acc": metrics["selection"]["accuracy"], "held-out acc": metrics["heldout"]["accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspaces", nargs="+", type=lambda path: Path(path).resolve())
    parser.add_argument("--configs", nargs="+", default=["fp32:0", "bf16:0", "bf16:0.001", "bf16:0.001:1"])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for workspace in args.workspaces:
        os.chdir(workspace)  # the stages' paths are relative to the project
        for round_ in range(args.rounds):
            for config in args.configs:
                precision, min_delta, *patience = config.split(":")
                patience = int(patience[0]) if patience else None
                rows.append({"workspace": workspace.name, "round": round_, "precision": precision,
                             "min_delta": float(min_delta), "patience": patience,
                             **run(workspace, precision, float(min_delta), patience)})
                print(rows[-1], flush=True)
    print(tabulate(rows, headers="keys", tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
