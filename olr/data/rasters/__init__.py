"""Opening image and label sources with clear errors, and aligning labels onto the image grid.

The image raster defines the grid (its CRS, transform and shape). Label maps are read
through that grid, whatever their own CRS and resolution:

- CORINE rasters of grid codes (1..44; 48 = NODATA, 49/50/255 = unclassified) or of CLC
  codes (111..523) are sampled with nearest neighbour (categorical data) at the image's
  pixel centres projected into the label raster (exact PROJ transforms at tile corners,
  affine in between), reading only the label block under each window. This equals a
  nearest-neighbour warp onto the image grid (GDAL's WarpedVRT) without its per-pixel
  cost, and is more exact than GDAL's default approximation (`raster_labels`);
- CORINE vectors (GeoPackage/Shapefile with a `Code_18` field) are reprojected to the
  image CRS once and rasterised per window (a pixel takes the polygon under its centre;
  `vector_labels`, read in a child process).

Every label reader returns *code indices*: (h, w) uint8, 0 = no label, i = the i-th CLC
code of `olr.data.label_schemes.ALL_CODES` (1..44) (`codes`). `images` opens the image
and tells its bands and nodata; `read_errors` turns GDAL's errors into one sentence;
`labels.open_labels` picks the reader. Every user file opens through `user_files`: GeoTIFF,
GeoPackage or Shapefile drivers only, from a local path, so a file of VRT XML cannot read other
files of the server or fetch URLs.
"""

from olr.data.rasters.codes import ENCODINGS, N_CODE_INDEX, detect_encoding, to_code_index
from olr.data.rasters.images import DEFAULT_BAND_NAMES, ImageMask, band_names, image_bands, open_image
from olr.data.rasters.label_source import LabelSource, code_counts, tile_origins, tiles_view
from olr.data.rasters.labels import VECTOR_SUFFIXES, open_labels
from olr.data.rasters.raster_labels import CHECK_READ_SIDE, RasterLabels
from olr.data.rasters.read_errors import READ_ERRORS, read_errors_named, read_failure
from olr.data.rasters.vector_labels import VECTOR_READ_TIMEOUT_S, VectorLabels, read_vector_layer

__all__ = [
    "CHECK_READ_SIDE",
    "DEFAULT_BAND_NAMES",
    "ENCODINGS",
    "N_CODE_INDEX",
    "READ_ERRORS",
    "VECTOR_READ_TIMEOUT_S",
    "VECTOR_SUFFIXES",
    "ImageMask",
    "LabelSource",
    "RasterLabels",
    "VectorLabels",
    "band_names",
    "code_counts",
    "detect_encoding",
    "image_bands",
    "open_image",
    "open_labels",
    "read_errors_named",
    "read_failure",
    "read_vector_layer",
    "tile_origins",
    "tiles_view",
    "to_code_index",
]
