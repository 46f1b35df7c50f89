#!/usr/bin/env python3
"""Train the QC classifier shipped as artifacts/model.joblib, on seeded synthetic data.

The model is a scikit-learn Pipeline (StandardScaler -> LogisticRegression) over four process
measurements of a part; class 0 is `qc_pass`, class 1 is `qc_fail` (the default CLASS_LABELS of
inference.py). The data are synthetic and generated from a fixed seed, so running this script again
gives a model with the same coefficients (the pickle's bytes may differ across library versions).

    python artifacts/train_model.py                     # writes artifacts/model.joblib
    python artifacts/train_model.py --output /tmp/m.joblib --samples 5000 --seed 7

This file lives in artifacts/ and imports nothing from the deploy_model tool
(docs/ARCHITECTURE.md, "Layout and the import rule").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ("thickness_mm", "temperature_c", "pressure_kpa", "vibration_rms")
# Nominal value and spread of each measurement on the production line.
_NOMINAL = np.array([2.50, 180.0, 101.3, 0.20])
_SPREAD = np.array([0.10, 8.0, 4.0, 0.08])
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "model.joblib"


def make_dataset(n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic measurements and labels (1 = qc_fail) from a known logistic rule plus noise."""
    rng = np.random.default_rng(seed)
    features = _NOMINAL + _SPREAD * rng.standard_normal((n_samples, len(FEATURES)))
    deviation = (features - _NOMINAL) / _SPREAD
    # Parts fail when thin, hot, over-pressured or vibrating; the weights are the "true" process.
    risk = -1.0 - 1.4 * deviation[:, 0] + 0.9 * deviation[:, 1] + 0.6 * deviation[:, 2] \
        + 1.8 * deviation[:, 3]
    labels = (rng.random(n_samples) < 1.0 / (1.0 + np.exp(-risk))).astype(np.int64)
    return features, labels


def train(features: np.ndarray, labels: np.ndarray) -> Pipeline:
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(C=1.0))])
    return model.fit(features, labels)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the model (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--samples", type=int, default=4000, help="training rows (default: 4000)")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed (default: 20240601)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    features, labels = make_dataset(args.samples, args.seed)
    model = train(features, labels)
    temporary = args.output.with_name(args.output.name + ".tmp")
    joblib.dump(model, temporary)
    temporary.replace(args.output)  # atomic: a reader never sees half a pickle
    accuracy = model.score(features, labels)
    sys.stdout.write(f"Wrote {args.output}: {type(model).__name__}, {len(FEATURES)} features "
                     f"({', '.join(FEATURES)}), classes qc_pass/qc_fail, training accuracy "
                     f"{accuracy:.3f} on {args.samples} rows (seed {args.seed})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
