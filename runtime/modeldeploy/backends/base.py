"""What backend implementations share. The interface itself is ``core.backend.BaseBackend``
(pipelines in core hold backends through it); it is re-exported here because projects and
external projects import it from this, its historical place.
"""

from __future__ import annotations

from modeldeploy.core.backend import BaseBackend

__all__ = ["BaseBackend"]
