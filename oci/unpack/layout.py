"""An image layout whose JSON documents are validated once per content, not once per run.

`oci.layout.Layout` validates `oci-layout`, `index.json` and every manifest and config against
the schemas on each read, which imports jsonschema (about 50 ms). Their validity depends only
on their bytes, so `oci.schema`'s digest memo (`remember=True`) may answer instead: the second
unpack of an image then costs a mount, not a schema engine start.
"""

from __future__ import annotations

import os
from typing import Any

from oci import schema
from oci.descriptor import Descriptor
from oci.errors import InvalidInput, NotFound
from oci.image import parse_image_argument
from oci.layout import LAYOUT_VERSION, Layout


class RememberingLayout(Layout):
    """A Layout that validates each distinct document once (memo keyed by content digest)."""

    @classmethod
    def open(cls, path: str, create: bool = False) -> Layout:
        if create:
            return super().open(path, create)
        layout = cls(path)
        header = os.path.join(layout.path, "oci-layout")
        if not os.path.exists(header):
            raise NotFound(f"{path}: not an OCI image layout (no oci-layout file)")
        if schema.load_file(header, "layout", remember=True)["imageLayoutVersion"] != LAYOUT_VERSION:
            raise InvalidInput(f"{header}: unsupported imageLayoutVersion")
        return layout

    def index(self) -> dict[str, Any]:
        return schema.load_file(os.path.join(self.path, "index.json"), "index", remember=True)

    def read_document(self, descriptor: Descriptor) -> dict[str, Any]:
        data = self.read_blob(descriptor)
        return schema.load(data, schema.kind_of(descriptor.media_type), f"{self.path}@{descriptor.digest}",
                           remember=True)


def open_image(text: str) -> tuple[Layout, Descriptor]:
    """`oci.image.open_image` over a RememberingLayout."""
    path, name = parse_image_argument(text)
    layout = RememberingLayout.open(path)
    return layout, layout.resolve(name)
