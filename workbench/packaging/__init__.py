"""Packaging: a registered model -> a slim, readable build context -> a container image.

Example::

    import workbench as wb
    image = wb.package("models:/churn@champion")          # ImageRecord(tag='workbench/churn:3', ...)
    image = wb.package("models:/churn/3", offline=True)   # no network during the build
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from pathlib import Path

from workbench.packaging.build import BuildEvent, ImageRecord, build_image
from workbench.packaging.context import BuildContext, default_tag, prepare_context, serving_requirements

__all__ = [
    "BuildContext",
    "BuildEvent",
    "ImageRecord",
    "build_image",
    "package",
    "prepare_context",
    "serving_requirements",
]


def package(
    model_uri: str,
    *,
    tag: str | None = None,
    base_image: str | None = None,
    offline: bool = False,
    explain: bool = False,
    context_dir: str | Path | None = None,
    on_event: Callable[[BuildEvent], None] | None = None,
    no_cache: bool = False,
    include_sample: bool = False,
    sample_rows: int = 1_000,
) -> ImageRecord:
    """Package ``model_uri`` into an image and return its record.

    The build context is written to ``context_dir`` (default: a new folder under the workspace's
    ``builds/``) and kept, so the image can be rebuilt by hand. ``tag`` defaults to
    ``workbench/<model>:<version>``; ``base_image`` to the settings' or ``python:<model's X.Y>-slim``;
    ``offline=True`` downloads a wheelhouse on this machine and builds with no network;
    ``explain=True`` adds SHAP so the server's explain route works (a larger image);
    ``no_cache=True`` rebuilds every layer. The image carries no training rows (the reference
    profile's sample is replaced by rows drawn from its summaries) unless ``include_sample=True``: then
    a random sample of at most ``sample_rows`` (up to 10,000). Its label
    ``io.workbench.model.training_rows`` and the model card say which.
    """
    from workbench.config import get_settings
    from workbench.governance import enforce
    from workbench.audit import record

    enforce(model_uri, "package")  # a policy violation stops here, before anything is written
    if context_dir is None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S-%f")
        context_dir = get_settings().home / "builds" / stamp
    context = prepare_context(model_uri, context_dir, base_image=base_image, offline=offline,
                              explain=explain, include_sample=include_sample,
                              sample_rows=sample_rows)
    image = build_image(context, tag or default_tag(context.model_name, context.model_version),
                        on_event=on_event, no_cache=no_cache)
    record("package", model_name=image.model_name, to_version=image.model_version, target=image.tag,
           details={"image_id": image.image_id, "model_uri": image.model_uri,
                    "training_rows": context.training_rows.describe()})
    return image
