"""BaseProject: what a model project plugs into the DeploymentRunner.

A project is a small class registered under its name (``calibration``, ``yolox``,
``centerpoint``), in the spirit of mmengine registries but flat: one dict, one decorator.
The runner calls these hooks in order; every hook gets the typed deploy config and the
(mmengine) model config, and raises ``ModelDeployError`` subclasses on bad input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from modeldeploy.core.backend import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.core.pipeline import BasePipeline

if TYPE_CHECKING:
    from modeldeploy.config import BaseDeploymentConfig


class BaseProject(ABC):
    name: ClassVar[str]
    task_type: ClassVar[str]  # classification | detection2d | detection3d

    @abstractmethod
    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        """Model from the mmengine model config, on CPU, in eval mode, no weights loaded."""

    def load_checkpoint(self, model: torch.nn.Module, checkpoint: str, cfg: BaseDeploymentConfig) -> torch.nn.Module:
        from modeldeploy.core.checkpoint import load_weights

        return load_weights(model, checkpoint, prefer_ema=cfg.use_ema)

    @abstractmethod
    def build_data_loader(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> BaseDataLoader: ...

    @abstractmethod
    def build_evaluator(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> BaseEvaluator: ...

    def has_data(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> bool:
        """Whether ``build_data_loader`` has a dataset to read for this run.

        A user may bring only a deploy config, a model config and a checkpoint: export must
        not need their data. False makes the runner trace the export with
        ``example_sample()`` and skip (or refuse, when explicitly configured) verification
        and evaluation. Default True: a project without the hook behaves as before."""
        return True

    def example_sample(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> dict[str, Any]:
        """A synthesised sample in the project's sample format (what ``load_sample`` returns),
        built from ``model_io`` / the model config, to trace the export when there is no data."""
        from modeldeploy.errors import DataError

        raise DataError(
            f"project {self.name!r} cannot synthesise an example input, so export needs data",
            hint="set runtime_io.info_file / runtime_io.data_root in the deploy config",
        )

    @abstractmethod
    def export_components(
        self, model: torch.nn.Module, cfg: BaseDeploymentConfig, model_cfg: Any, sample: dict[str, Any]
    ) -> list[ExportComponent]:
        """Torch modules to export, with graph IO names, example inputs built from ``sample``
        (a real preprocessed sample, so traced shapes are realistic) and dynamic axes."""

    @abstractmethod
    def build_pipeline(
        self, backends: dict[str, BaseBackend], cfg: BaseDeploymentConfig, model_cfg: Any, device: torch.device
    ) -> BasePipeline:
        """A pipeline over one backend per component name (same class for every backend)."""

    def compare_predictions(self, reference: Any, test: Any, model_cfg: Any) -> dict[str, Any] | None:
        """Compare two backends' *final* predictions (boxes after decode + NMS…).

        Raw outputs can agree within tolerance while a score near the threshold flips a box;
        detection projects override this so verification also checks what users consume.
        Return a JSON-able dict with at least ``passed`` (bool), or None to skip."""
        return None

    def prepare_for_export(self, model: torch.nn.Module, cfg: BaseDeploymentConfig) -> torch.nn.Module:
        """Hook for export-time rewrites (e.g. YOLOX ReLU6→ReLU). Default: unchanged."""
        return model


PROJECTS: dict[str, type[BaseProject]] = {}


def register_project(cls: type[BaseProject]) -> type[BaseProject]:
    PROJECTS[cls.name] = cls
    return cls


ProjectFactory = Callable[[], BaseProject]
