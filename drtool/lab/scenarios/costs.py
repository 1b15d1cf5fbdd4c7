"""The lab's cost model: what a real node spends on images and container starts.

Times here are *model* seconds, the seconds a real homelab would spend; the lab plays them at the
scenario's ``time_scale`` (``Scenario.scaled``), as it plays Flux's timers. Messages keep the
model's figure, so a pod's ``Pulled`` event says what the real pull would have taken.

- a pull moves the image's compressed size over the node's link (``bandwidth_mbit``, 100 Mbit/s
  unless set); the kubelet pulls one image at a time (kubelet ``serializeImagePulls`` defaults to
  true: kubernetes v1.31.4 pkg/kubelet/apis/config/v1beta1/defaults.go), so a pod's pulls add up;
- an import from a local archive (K3s ``agent/images`` at start, or ``ctr images import``) reads
  and unpacks the archive at disk speed; ``ctr images export`` writes uncompressed layers, so the
  archive is ``archive_ratio`` times the compressed size;
- a container start is a fixed cost per container once its image is present.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ImageCosts", "go_duration"]

_STRICT = ConfigDict(extra="forbid", frozen=True)
MB = 1_000_000          # registries and `docker images` print decimal megabytes


class ImageCosts(BaseModel):
    """The ``images:`` section of a scenario."""

    model_config = _STRICT
    bandwidth_mbit: float = Field(100.0, gt=0, description="the nodes' link to the registries, Mbit/s")
    disk_mb_s: float = Field(200.0, gt=0, description="MB/s at which a node reads and unpacks a local archive")
    archive_ratio: float = Field(2.0, ge=1, description="bytes of an exported (uncompressed) archive per "
                                 "compressed byte of the image")
    container_start: float = Field(0.0, ge=0, description="model seconds from image present to container running")
    sizes_mb: dict[str, float] = Field(default_factory=dict, description="image reference -> compressed size, MB")
    charts: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="chart name -> the images its default values run (the lab's workload "
        "for the chart runs one container per image)")

    @model_validator(mode="after")
    def _sized(self) -> "ImageCosts":
        for chart, refs in self.charts.items():
            for ref in refs:
                if ref not in self.sizes_mb:
                    raise ValueError(f"images.charts.{chart}: {ref} has no size in images.sizes_mb")
        for ref, size in self.sizes_mb.items():
            if size < 0:
                raise ValueError(f"images.sizes_mb.{ref}: a size cannot be negative")
        return self

    def size_bytes(self, ref: str) -> int:
        """Compressed bytes of ``ref``; 0 for an image the scenario does not size (free to pull)."""
        from drtool.remote.image_cache import normalized   # the name containerd keeps (an import's RepoTags)

        return int(self.sizes_mb.get(ref, self.sizes_mb.get(normalized(ref), 0.0)) * MB)

    def pull_seconds(self, ref: str) -> float:
        """Model seconds to pull ``ref`` over the link."""
        return self.size_bytes(ref) * 8 / (self.bandwidth_mbit * MB)

    def import_seconds(self, refs: list[str] | tuple[str, ...]) -> float:
        """Model seconds to import an archive holding ``refs`` from the local disk."""
        return sum(self.size_bytes(r) for r in refs) * self.archive_ratio / (self.disk_mb_s * MB)

    def start_seconds(self, pulls: list[str] | tuple[str, ...], containers: int) -> float:
        """Model seconds from a pod bound to its containers running: the pulls, one after another,
        then each container's start."""
        return sum(self.pull_seconds(r) for r in pulls) + containers * self.container_start


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String`` prints a millisecond-rounded duration, the form of
    the kubelet's ``Successfully pulled image "x" in 7.264s (7.264s including waiting)``."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
