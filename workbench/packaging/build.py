"""Build context -> image, through the Docker SDK, with progress streamed as events."""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from workbench._docker import docker_client
from workbench.errors import PackagingError
from workbench.packaging.context import BuildContext

__all__ = ["BuildEvent", "ImageRecord", "build_image"]

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_LAYER = re.compile(r"^ ---> ([0-9a-f]{12,})$")
_RUN_FAILED = re.compile(r"^The command '.*' returned a non-zero code: (\d+)$", re.S)


@dataclass(frozen=True)
class BuildEvent:
    """One thing that happened during a build, for progress bars and logs."""

    kind: Literal["context", "step", "log", "pull", "done", "error"]
    message: str
    #: Current step and the number of steps (Dockerfile instructions), when known.
    step: int | None = None
    total_steps: int | None = None
    #: The layer the current step produced, and whether it came from the build cache.
    layer: str | None = None
    cached: bool = False
    #: Bytes sent or pulled so far, and in all, when the event is about bytes.
    bytes_done: int | None = None
    bytes_total: int | None = None

    @property
    def fraction(self) -> float | None:
        """How far the build is, from 0 to 1, when the step is known."""
        if self.kind == "done":
            return 1.0
        if self.step is None or not self.total_steps:
            return None
        return (self.step - 1) / self.total_steps


@dataclass(frozen=True)
class ImageRecord:
    """A built model image."""

    tag: str
    image_id: str
    size_bytes: int
    labels: Mapping[str, str]
    model_uri: str
    model_name: str
    model_version: str | None
    base_image: str
    context_dir: Path
    build_seconds: float
    total_steps: int
    #: Dockerfile instructions whose layer came from the build cache.
    cached_instructions: tuple[str, ...]
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tag": self.tag,
            "image_id": self.image_id,
            "size_bytes": self.size_bytes,
            "size_mb": round(self.size_bytes / 1e6, 1),
            "model_uri": self.model_uri,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "base_image": self.base_image,
            "context_dir": str(self.context_dir),
            "build_seconds": round(self.build_seconds, 1),
            "steps": self.total_steps,
            "cached_steps": len(self.cached_instructions),
            "labels": dict(self.labels),
            "created": self.created,
        }

    def _repr_html_(self) -> str:
        from workbench.cards import card

        version = f" v{self.model_version}" if self.model_version else ""
        return card("Image", self.tag, badges=[(f"{self.size_bytes / 1e6:.0f} MB", "plain")], rows=[
            ("model", f"{self.model_name}{version} ({self.model_uri})"), ("base image", self.base_image),
            ("built", f"in {self.build_seconds:.1f} s, {len(self.cached_instructions)} of {self.total_steps} "
                      "steps from the cache"),
            ("image id", self.image_id[:19]), ("build context", str(self.context_dir)),
        ])


def _context_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _events(stream: Iterator[dict[str, Any]]) -> Iterator[BuildEvent]:
    """Docker's JSON build stream -> BuildEvents (the classic builder's format)."""
    step: int | None = None
    total: int | None = None
    cached = False
    for chunk in stream:
        if "error" in chunk:
            yield BuildEvent("error", str(chunk["error"]).strip(), step, total)
            return
        if "stream" in chunk:
            for line in str(chunk["stream"]).splitlines():
                if not line.strip():
                    continue
                if match := _STEP.match(line):
                    step, total, cached = int(match.group(1)), int(match.group(2)), False
                    yield BuildEvent("step", match.group(3), step, total)
                elif line.strip() == "---> Using cache":
                    cached = True
                elif match := _LAYER.match(line):
                    yield BuildEvent("log", line.strip(), step, total, layer=match.group(1), cached=cached)
                else:
                    yield BuildEvent("log", line, step, total)
        elif "status" in chunk:
            detail = chunk.get("progressDetail") or {}
            yield BuildEvent(
                "pull", f"{chunk.get('id', '')} {chunk['status']}".strip(), step, total,
                bytes_done=detail.get("current"), bytes_total=detail.get("total"),
            )
        elif "aux" in chunk and "ID" in chunk["aux"]:
            # The classic builder reports the image of every stage; the last one is the result.
            yield BuildEvent("log", f"image {chunk['aux']['ID']}", step, total, layer=str(chunk["aux"]["ID"]))


def build_image(
    context: BuildContext,
    tag: str,
    *,
    on_event: Callable[[BuildEvent], None] | None = None,
    no_cache: bool = False,
) -> ImageRecord:
    """Build ``context`` into an image tagged ``tag``; ``on_event`` sees every build event.

    ``no_cache`` rebuilds every layer instead of reusing the engine's build cache.
    """
    client = docker_client(timeout=1800)
    emit = on_event or (lambda event: None)
    started = time.monotonic()
    _ensure_base_image(client, context.base_image, emit)
    size = _context_bytes(context.path)
    emit(BuildEvent("context", f"sending build context ({size / 1e6:.1f} MB)", bytes_done=size, bytes_total=size))
    tail: deque[str] = deque(maxlen=25)
    last_step = "(before the first step)"
    image_id = None
    steps = 0
    instructions: dict[int, str] = {}
    layer_cached: dict[int, bool] = {}
    try:
        stream = client.api.build(
            path=str(context.path),
            tag=tag,
            rm=True,
            forcerm=True,
            nocache=no_cache,
            decode=True,
            buildargs={"BASE_IMAGE": context.base_image},
            # Offline builds get no network at all; others use the host's (builds on an engine
            # started without iptables have no other way out).
            network_mode="none" if context.offline else "host",
        )
        for event in _events(stream):
            emit(event)
            if event.kind == "step":
                last_step = f"Step {event.step}/{event.total_steps}: {event.message}"
                steps = event.total_steps or steps
                if event.step is not None:
                    instructions[event.step] = event.message
            elif event.kind == "log":
                tail.append(event.message)
                if event.message.startswith("image sha256:"):
                    image_id = event.layer
                elif event.layer and event.step is not None:
                    layer_cached[event.step] = event.cached
            elif event.kind == "error":
                tail.append(event.message)
                reason = _RUN_FAILED.sub(r"the RUN step exited with code \1", event.message)
                raise PackagingError(
                    f"building {tag} failed: {reason}{_hint(chr(10).join(tail), last_step, context)}",
                    step=last_step,
                    log_tail="\n".join(tail),
                )
    except PackagingError:
        raise
    except Exception as exc:
        raise PackagingError(f"building {tag} failed: {exc}", step=last_step, log_tail="\n".join(tail)) from exc
    if image_id is None:
        raise PackagingError(f"building {tag} ended without an image", step=last_step, log_tail="\n".join(tail))
    image = client.images.get(image_id)
    record = ImageRecord(
        tag=tag,
        image_id=image.id,
        size_bytes=int(image.attrs.get("Size", 0)),
        labels=MappingProxyType(dict(image.labels or {})),
        model_uri=context.model_uri,
        model_name=context.model_name,
        model_version=context.model_version,
        base_image=context.base_image,
        context_dir=context.path,
        build_seconds=time.monotonic() - started,
        total_steps=steps,
        cached_instructions=tuple(instructions[n] for n, hit in sorted(layer_cached.items()) if hit),
    )
    emit(BuildEvent("done", f"built {tag} ({record.size_bytes / 1e6:.0f} MB)", steps, steps))
    return record


def _base_image_missing(image: str) -> PackagingError:
    """The one error for a base image that is neither on this machine nor pullable: it names the
    image and the two fixes."""
    script = "scripts/build-base-image" + ("" if image == "python:3.11-slim" else f" {image}")
    return PackagingError(
        f"the base image {image} is not on this machine and cannot be pulled: set WORKBENCH_BASE_IMAGE=IMAGE "
        f"(or --base-image) to an image you have (`docker images`), or make {image} without a registry with "
        f"`{script}`"
    )


def _ensure_base_image(client: Any, image: str, emit: Callable[[BuildEvent], None]) -> None:
    """Have ``image`` on the engine before building: pulled if it is missing, else a clear error.

    Without this the classic builder answers a missing base with the registry's raw network error.
    """
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise PackagingError(f"the Docker engine cannot look up the base image {image} ({exc.explanation}): "
                             "check the engine with `docker info`") from exc
    emit(BuildEvent("pull", f"pulling the base image {image}"))
    try:
        client.images.pull(image)
    except docker.errors.APIError as exc:  # no registry, no such image, or no access
        raise _base_image_missing(image) from exc


def _hint(log: str, step: str, context: BuildContext) -> str:
    """Advice for the failures users meet most, from the failing step and the log's last lines."""
    lowered = log.lower()
    if ": FROM " in step or "pull access denied" in lowered or "manifest unknown" in lowered:
        return (
            f". Is the base image {context.base_image} available? Pull it, give another with --base-image "
            "(or WORKBENCH_BASE_IMAGE), or make one without a registry with scripts/build-base-image"
        )
    if "could not find a version" in lowered or "no matching distribution" in lowered:
        return ". A requirement could not be installed: check the model's requirements.txt in the build context"
    return ""
