"""verify(): run each configured (reference, test) backend pair on identical inputs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from modeldeploy.config.sections import Scenario
from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.core.results import PredictionComparison, VerificationResult
from modeldeploy.core.timing import StageTimer
from modeldeploy.verification.compare import Comparison, compare_outputs, summarize

log = logging.getLogger(__name__)
# (backend, device) -> the reference pipeline; (backend, device, precision, test=True) -> the test one
PipelineFactory = Callable[..., BasePipeline]
PredictionComparer = Callable[[Any, Any], dict[str, Any] | None]  # (ref prediction, test prediction)


def verify(
    scenarios: tuple[Scenario, ...],
    make_pipeline: PipelineFactory,
    loader: BaseDataLoader,
    *,
    num_samples: int,
    tolerance: float,
    compare_predictions: PredictionComparer | None = None,
    allow_nonfinite: tuple[str, ...] = (),
    on_step: Callable[[int, int], None] | None = None,
) -> VerificationResult:
    """Return the results.json ``verification`` section. Raises nothing on mismatch: the
    caller decides (a failed verdict stops the run)."""
    comparisons: list[Comparison] = []
    predictions: list[PredictionComparison] = []
    indices = loader.sample_indices(num_samples)
    done, total = 0, len(scenarios) * len(indices)
    for sc in scenarios:
        ref = make_pipeline(sc.ref_backend, sc.ref_device)
        test = make_pipeline(sc.test_backend, sc.test_device, sc.test_precision, test=True)
        log.info("verifying %s against %s on %d sample(s)", test.label, ref.label, len(indices))
        for i in indices:
            sample = loader.load_sample(i)
            inputs = ref.model_inputs(sample)
            ref_raw = ref.run_model(inputs, StageTimer(ref.device))
            test_raw = test.run_model({k: v.to(test.device) for k, v in inputs.items()}, StageTimer(test.device))
            comparisons += compare_outputs(
                ref_raw,
                test_raw,
                reference=ref.label,
                test_label=test.label,
                tolerance=tolerance,
                sample=i,
                allow_nonfinite=allow_nonfinite,
            )
            if (
                compare_predictions is not None
                and _finite(ref_raw, allow_nonfinite)
                and _finite(test_raw, allow_nonfinite)
            ):
                verdict = compare_predictions(ref.postprocess(ref_raw, sample), test.postprocess(test_raw, sample))
                if verdict is not None:
                    predictions.append(
                        PredictionComparison.model_validate(
                            {"reference": ref.label, "test": test.label, "sample": i, **verdict}
                        )
                    )
            done += 1
            if on_step is not None:
                on_step(done, total)
    rows = summarize(comparisons)
    passed = bool(rows) and all(r.passed for r in rows) and all(p.passed for p in predictions)
    for r in rows:
        log.info(
            "  %s vs %s %-16s max_abs=%s %s",
            r.test,
            r.reference,
            r.output,
            r.max_abs_diff,
            "ok" if r.passed else f"FAIL ({r.reason})",
        )
    for p in predictions:
        if not p.passed:
            log.info(
                "  final predictions of %s differ from %s on sample %d: %s",
                p.test,
                p.reference,
                p.sample,
                {k: v for k, v in p.to_dict().items() if k not in ("reference", "test", "sample")},
            )
    return VerificationResult(
        passed=passed,
        tolerance=tolerance,
        allow_nonfinite=list(allow_nonfinite),
        num_samples=len(indices),
        comparisons=rows,
        predictions=predictions or None,
    )


def _finite(raw: Any, allowed: tuple[str, ...]) -> bool:
    """Post-processing NaN outputs (NMS, decoding) is meaningless; the raw comparison already failed them."""
    import torch

    items = raw.items() if isinstance(raw, dict) else [("", raw)]
    return all(
        k in allowed or not isinstance(v, torch.Tensor) or not v.is_floating_point() or bool(torch.isfinite(v).all())
        for k, v in items
    )
