"""The `keras.applications` networks offered as classifier families and Siamese trunks.

One table, read by the options (the families' names and titles, without importing Keras)
and by `olr.training.models` (which application to build, the smallest tile it takes).
Each is built without its ImageNet top and without its own input preprocessing, on
tiles of any band count; ImageNet weights come only from a file the user supplies.
"""

from __future__ import annotations

from dataclasses import dataclass

from olr.errors import OLRError


@dataclass(frozen=True)
class Backbone:
    application: str  # the constructor's name in keras.applications
    title: str  # the family in words, for the Train page
    min_side: int  # the smallest tile side in pixels the application builds for (Keras refuses smaller)


#: Cheapest first. Keras 3 (3.15) refuses inputs below 32x32 for all four.
BACKBONES: dict[str, Backbone] = {
    "mobilenetv3small": Backbone("MobileNetV3Small", "MobileNetV3-Small (keras.applications)", 32),
    "efficientnetv2b0": Backbone("EfficientNetV2B0", "EfficientNetV2-B0 (keras.applications)", 32),
    "resnet50": Backbone("ResNet50", "ResNet-50 (keras.applications)", 32),
    "convnext_tiny": Backbone("ConvNeXtTiny", "ConvNeXt-Tiny (keras.applications)", 32),
}


def check_tile_side(family: str, tile_shape) -> None:
    """Raise OLRError when tiles of `tile_shape` (h, w, ...) are too small for the backbone `family`."""
    h, w = (int(s) for s in tile_shape[:2])
    need = BACKBONES[family].min_side
    if min(h, w) < need:
        raise OLRError(
            f"The model family {family} needs tiles of at least {need}x{need} pixels, but these tiles are "
            f"{h}x{w}; pick the resnet or thesis family, or a dataset with larger tiles."
        )


def check_architecture(family: str, tile_shape, backbone_weights=None) -> None:
    """Raise OLRError when a weights file is set for a family that is not a backbone, or the tiles are too small
    for the backbone `family`: checked when a run is planned (before its folder exists) and when a model is built."""
    if backbone_weights is not None and family not in BACKBONES:
        raise OLRError(
            f"backbone_weights is set, but the family {family} is not a keras.applications backbone; "
            f"leave backbone_weights blank or pick one of {', '.join(BACKBONES)}."
        )
    if family in BACKBONES:
        check_tile_side(family, tile_shape)
