#!/usr/bin/env python3
"""The main job (`make run`): generate the demo dataset, train a Pythia-31M-shape model on it to at
least 95% fact accuracy, evaluate it, then edit one fact with LoRA (rank 32, last block's MLP) and one
with full fine-tuning, and report edit success and remaining accuracy for both.

The job lives in the package (behemoth/main_job.py); this script is `behemoth run` with the same
options: --preset {tiny,demo} --out DIR --seed N --quiet. It writes into --out: dataset.h5, model.h5
(a resumable checkpoint), edit_lora.h5, edit_full.h5, report.json and training.png.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

from behemoth.cli import main  # noqa: E402
# edit_grid.py imports the presets and edit optimizers from here.
from behemoth.main_job import EDIT_OPTIMIZER, FULL_OPTIMIZER, PRESETS  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
