"""One state root's stores together: what every verb of the front starts from."""

from __future__ import annotations

from oci.errors import NotFound

from .containers import ContainerStore
from .images import ImageStore
from .root import StateRoot
from .volumes import VolumeStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.runtime.state import StateStore
    from oci.unpack.overlay import LayerCache


class Engine:
    """The images, containers, volumes, layer cache and runtime state of a state root."""

    def __init__(self, root: StateRoot, runtime: str = "oci-run") -> None:
        self.root = root
        self.runtime_name = runtime
        self.images = ImageStore(root.images)
        self.containers = ContainerStore(root.containers, root.names)
        self.volumes = VolumeStore(root.volumes)

    def runtime_store(self) -> StateStore:
        """oci-run's state of this root's containers (its --root)."""
        from oci.runtime.state import StateStore

        return StateStore(self.root.runtime)

    def runtime_status(self, cid: str) -> tuple[str | None, int]:
        """(oci-run's status of the container, or None when it has no such container; its pid)."""
        try:
            container = self.runtime_store().load(cid)
        except NotFound:
            return None, 0
        status = container.status()
        return status, container.pid if status != "stopped" else 0

    def layer_cache(self) -> LayerCache:
        from oci.unpack.overlay import LayerCache

        return LayerCache(self.root.layers)
