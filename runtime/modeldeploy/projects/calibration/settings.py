"""Typed ``calibration_data`` section of the calibration *model* config.

Why in the model config: in AWML these values live in the training pipeline
(``CalibrationClassificationTransform``); they describe how the network's input is built,
so a checkpoint and its input recipe travel together. The deploy config stays within
the framework's generic schema.

Defaults reproduce AWML's transform: ``lidar_range=128`` (depth channel = 255·z/128),
``dilation_size=1`` (3×3 splat, nearest point wins), fused image ÷ 255 with an empty
``data_preprocessor`` (mean 0, std 255 on the 0–255 scale), miscalibration with
probability 0.5, 1–10° rotation and 0.05–0.2 m translation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modeldeploy.config.parse import parse_section
from modeldeploy.core.model_config import model_cfg_dict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MiscalibrationSettings(_Strict):
    """How a label-0 sample's extrinsic is perturbed (deterministic per sample index)."""

    probability: float = Field(0.5, ge=0.0, le=1.0)
    min_rotation_deg: float = Field(1.0, ge=0.0)
    max_rotation_deg: float = Field(10.0, ge=0.0)
    min_translation_m: float = Field(0.05, ge=0.0)
    max_translation_m: float = Field(0.2, ge=0.0)
    seed: int = 0

    @model_validator(mode="after")
    def _ordered(self) -> MiscalibrationSettings:
        if self.min_rotation_deg > self.max_rotation_deg:
            raise ValueError("min_rotation_deg must be <= max_rotation_deg")
        if self.min_translation_m > self.max_translation_m:
            raise ValueError("min_translation_m must be <= max_translation_m")
        if self.max_rotation_deg == 0 and self.max_translation_m == 0:
            raise ValueError("a miscalibration needs a non-zero rotation or translation")
        return self


class NormalizeSettings(_Strict):
    """Applied to the fused (B, G, R, depth, intensity) image on its 0–255 scale."""

    mean: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    std: tuple[float, float, float, float, float] = (255.0, 255.0, 255.0, 255.0, 255.0)

    @model_validator(mode="after")
    def _positive(self) -> NormalizeSettings:
        if any(s <= 0 for s in self.std):
            raise ValueError("every std must be > 0")
        return self


class BundledSampleSettings(_Strict):
    """The synthetic dataset used when the deploy config names no dataset."""

    num_samples: int = Field(200, ge=1)
    seed: int = 0
    height: int = Field(96, ge=16)
    width: int = Field(160, ge=16)


class CalibrationDataSettings(_Strict):
    max_depth: float = Field(128.0, gt=0)
    dilation_size: int = Field(1, ge=0, le=5)
    normalize: NormalizeSettings = NormalizeSettings()
    miscalibration: MiscalibrationSettings = MiscalibrationSettings()
    bundled_sample: BundledSampleSettings = BundledSampleSettings()
    class_names: tuple[str, str] = ("miscalibrated", "calibrated")


def data_settings(model_cfg: Any) -> CalibrationDataSettings:
    """Parse ``calibration_data`` (absent → AWML defaults); ConfigError names the key.
    ``"bundled_sample" in result.model_fields_set`` tells whether the config names the sample."""
    return parse_section(
        CalibrationDataSettings,
        model_cfg_dict(model_cfg).get("calibration_data"),
        key="calibration_data",
        source="model config",
        doc="the calibration project README",
    )
