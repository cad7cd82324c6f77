"""Opening image and label sources with clear errors, and aligning labels onto the image grid.

The image raster defines the grid (its CRS, transform and shape). Label maps are read
through that grid, whatever their own CRS and resolution:

- label rasters — CORINE grid codes (1..44; 48 = NODATA, 49/50/255 = unclassified), CLC
  codes (111..523), or any categorical map whose values a legend names — are sampled
  with nearest neighbour (categorical data) at the image's pixel centres projected into
  the label raster (exact PROJ transforms at tile corners, affine in between), reading
  only the label block under each window. This equals a nearest-neighbour warp onto the
  image grid (GDAL's WarpedVRT) without its per-pixel cost, and is more exact than GDAL's
  default approximation (`raster_labels`);
- label vectors (GeoPackage/Shapefile; CORINE's `Code_18` field, or the `--label-field`
  whose values a legend names) are reprojected to the image CRS once and rasterised per
  window (a pixel takes the polygon under its centre; `vector_labels`, read in a child
  process).

Every label reader returns *code indices*: (h, w) uint8, 0 = no label, i = the i-th class
code of its source's `classes` (CORINE: `olr.data.label_schemes.ALL_CODES`, 1..44; a legend
without CLC codes: the legend's values), through a `codes.LabelCoding`; a value the coding
does not cover is counted apart and refused (`LabelSource.require_known`). `images` opens the image
and tells its bands and nodata; `band_stack` reads several band files (Sentinel-2's
at 10, 20 and 60 m) as one image on one grid; `read_errors` turns GDAL's errors into one sentence;
`labels.open_labels` picks the reader. Every user file opens through `user_files`: GeoTIFF,
GeoPackage or Shapefile drivers only, from a local path, so a file of VRT XML cannot read other
files of the server or fetch URLs.
"""

from olr.data.rasters.band_stack import REFLECTANCE_RESAMPLING, BandStack, open_image_files
from olr.data.rasters.codes import (
    ENCODINGS,
    N_CODE_INDEX,
    LabelCoding,
    auto_encoding,
    corine_coding,
    legend_coding,
    to_code_index,
)
from olr.data.rasters.images import (
    DEFAULT_BAND_NAMES,
    ImageMask,
    band_names,
    band_scaling,
    image_bands,
    open_image,
    rgb_positions,
)
from olr.data.rasters.label_source import LabelSource, code_counts, tile_origins, tiles_view
from olr.data.rasters.labels import VECTOR_SUFFIXES, label_nodata, open_labels
from olr.data.rasters.raster_labels import CHECK_READ_SIDE, RasterLabels
from olr.data.rasters.read_errors import READ_ERRORS, read_errors_named, read_failure
from olr.data.rasters.vector_labels import VECTOR_READ_TIMEOUT_S, VectorLabels, read_vector_layer

__all__ = [
    "CHECK_READ_SIDE",
    "DEFAULT_BAND_NAMES",
    "ENCODINGS",
    "N_CODE_INDEX",
    "READ_ERRORS",
    "REFLECTANCE_RESAMPLING",
    "VECTOR_READ_TIMEOUT_S",
    "VECTOR_SUFFIXES",
    "BandStack",
    "ImageMask",
    "LabelCoding",
    "LabelSource",
    "RasterLabels",
    "VectorLabels",
    "auto_encoding",
    "band_names",
    "band_scaling",
    "code_counts",
    "corine_coding",
    "image_bands",
    "label_nodata",
    "legend_coding",
    "open_image",
    "open_image_files",
    "open_labels",
    "read_errors_named",
    "read_failure",
    "read_vector_layer",
    "rgb_positions",
    "tile_origins",
    "tiles_view",
    "to_code_index",
]
