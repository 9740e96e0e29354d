"""Write a checkpoint for the tiny_classifier example in the layout the mmengine Runner saves
(``meta`` + ``state_dict``), so the example runs like a real project: usage
``python examples/custom_project/make_checkpoint.py OUT.pth``. A real project trains instead."""

from __future__ import annotations

import sys

import torch
from tiny_classifier.project import TinyClassifier

if __name__ == "__main__":
    torch.manual_seed(0)
    torch.save(
        {"meta": {"epoch": 1, "note": "untrained example weights"}, "state_dict": TinyClassifier().state_dict()},
        sys.argv[1],
    )
