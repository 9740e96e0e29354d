"""BaseProject: what a model project plugs into the DeploymentRunner.

A project is a small class registered under its name (``calibration``, ``yolox``,
``centerpoint``), in the spirit of mmengine registries but flat: one dict, one decorator.
The runner calls these hooks in order; every hook gets the typed deploy config and the
(mmengine) model config, and raises ``ModelDeployError`` subclasses on bad input.

A project's typed settings are parsed once: ``from_configs(cfg, model_cfg)`` (or ``bind``)
parses the project's own deploy-config section (the ``deploy_section`` it declares) and its
view of the model config (``parse_settings``) before any work, and the hooks read them back
through ``section(cfg)`` / ``settings(model_cfg)`` instead of re-reading the raw configs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from modeldeploy.core.backend import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.core.pipeline import BasePipeline

if TYPE_CHECKING:
    from modeldeploy.config import BaseDeploymentConfig
    from modeldeploy.config.sections import Section

P = TypeVar("P", bound="BaseProject")


class BaseProject(ABC):
    name: ClassVar[str]
    task_type: ClassVar[str]  # classification | detection2d | detection3d
    deploy_section: ClassVar[type[Section] | None] = None
    """The project's own deploy-config section, written ``<name> = dict(...)`` (yolox:
    ``YOLOXDeploySection``); None: the project reads none, and such a key is an error.
    Declared here rather than registered with the config, which sits below the projects."""

    _settings_memo: tuple[Any, Any] | None = None  # (model_cfg, its parsed settings)

    # ------------------------------------------------------------------ configs, parsed once
    @classmethod
    def from_configs(cls: type[P], cfg: BaseDeploymentConfig, model_cfg: Any = None) -> P:
        """A project bound to its configs: both parsed (and checked) now, once."""
        return cls().bind(cfg, model_cfg)

    def bind(self: P, cfg: BaseDeploymentConfig, model_cfg: Any = None) -> P:
        """Parse this project's deploy section and (when given) model-config settings now, so
        a bad key fails before any work; the hooks then reuse the parsed values."""
        self.section(cfg)
        self.check_config(cfg)
        if model_cfg is not None:
            self.settings(model_cfg)
        return self

    def check_config(self, cfg: BaseDeploymentConfig) -> None:
        """Deploy-config checks only this project can make (e.g. ``model_io`` settings it cannot
        honour: ``core.model_io.refuse_unsupported``), run when the project is bound. Default: none."""
        return None

    def section(self, cfg: BaseDeploymentConfig) -> Any:
        """This project's deploy section, typed (defaults when the config has none); None when
        the project declares no ``deploy_section``. Parsed once per config."""
        return cfg.project_section(self.deploy_section, self.name)

    def parse_settings(self, model_cfg: Any) -> Any:
        """The project's typed view of the model config (a pydantic model or dataclass built
        with ``modeldeploy.config.parse.parse_section``); ConfigError on a bad key. Default:
        None (the project reads the model config only in ``build_model``)."""
        return None

    def settings(self, model_cfg: Any) -> Any:
        """``parse_settings(model_cfg)``, parsed once for the model config this project is
        bound to (the runner's); another model config is parsed afresh and becomes the bound one."""
        memo = self._settings_memo
        if memo is None or memo[0] is not model_cfg:
            memo = (model_cfg, self.parse_settings(model_cfg))
            self._settings_memo = memo
        return memo[1]

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
