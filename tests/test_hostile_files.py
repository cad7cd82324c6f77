"""Hostile source files: a ".tif" that is really GDAL VRT XML must not read other files of the
server or make it fetch URLs (real files through GDAL, a real HTTP server, the real CLI).

Vectors open through fiona, whose own driver list already refused OGR VRT; `user_files` narrows
it further to GeoPackage and Shapefile."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from olr.data.prepare import prepare_dataset
from olr.errors import OLRError
from tests.fixtures.data import IMAGE_CRS, IMAGE_ORIGIN, make_scene, run_cli_concurrently

SECRET = "/etc/passwd"
#: How long the local HTTP server listens at most, so a failing test never leaves it running.
SERVER_LIFETIME_S = 300


def raster_vrt(source: str, raw: bool) -> str:
    """VRT XML over the test scene's grid (10 m, 64 x 64 px) whose one band comes from `source`."""
    x, y = IMAGE_ORIGIN
    if raw:
        band = (
            '<VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">'
            f'<SourceFilename relativetoVRT="0">{source}</SourceFilename>'
            "<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>64</LineOffset></VRTRasterBand>"
        )
    else:
        band = (
            '<VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
            "</SimpleSource></VRTRasterBand>"
        )
    return (
        f'<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>{IMAGE_CRS}</SRS>'
        f"<GeoTransform>{x}, 10, 0, {y}, 0, -10</GeoTransform>{band}</VRTDataset>\n"
    )


class _Recorder(http.server.BaseHTTPRequestHandler):
    def _record(self):
        self.server.requests.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD = _record

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def http_server():
    """A local HTTP server on 127.0.0.1 that records every request; it stops by itself after a while."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    server.timeout = 0.2
    stop = threading.Event()
    deadline = time.monotonic() + SERVER_LIFETIME_S

    def serve():
        while not stop.is_set() and time.monotonic() < deadline:
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(5)
    server.server_close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, http_server):
    """The scene and the hostile files, written once."""
    folder = tmp_path_factory.mktemp("hostile")
    scene = make_scene(folder / "scene", size=64, seed=5)
    url = f"http://127.0.0.1:{http_server.server_address[1]}"
    files = {
        "passwd.tif": raster_vrt(SECRET, raw=True),
        "remote.tif": raster_vrt(f"/vsicurl/{url}/scene.tif", raw=False),
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    return scene, folder


def assert_refused(result, message: str) -> None:
    """Exit 2, one `error:` line matching `message` that leaks nothing of the secret, nothing in data/."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "root:" not in result.stderr + result.stdout
    data = result.home / "data"
    assert not data.exists() or not any(data.iterdir()), sorted(data.iterdir())


@pytest.fixture(scope="module")
def cli(hostile, tmp_path_factory):
    """Each hostile file given to the real `prepare` command, all at once."""
    scene, folder = hostile

    def prepare(image, labels):
        return (["prepare", "--image", image, "--labels", labels, "--tile", "16", "--out", "data/ds"], None)

    cases = {
        "passwd_image": prepare(folder / "passwd.tif", scene.labels),
        "remote_image": prepare(folder / "remote.tif", scene.labels),
        "passwd_labels_as_tif": prepare(scene.image, folder / "passwd.tif"),
    }
    return run_cli_concurrently(cases, tmp_path_factory.mktemp("hostile_homes"))


def test_a_vrt_named_tif_cannot_read_a_server_file_into_the_dataset(cli):
    assert_refused(cli["passwd_image"], "is not a raster this app reads (only GeoTIFF is accepted)")


def test_a_vrt_named_tif_as_labels_is_refused(cli):
    assert_refused(cli["passwd_labels_as_tif"], "neither a raster nor a vector file this app reads")


def test_a_vrt_with_a_remote_source_is_refused_and_the_server_gets_no_request(cli, http_server):
    assert_refused(cli["remote_image"], "is not a raster this app reads")
    time.sleep(0.5)  # a request in flight would have arrived by now
    assert http_server.requests == []


def test_the_library_refuses_the_same_files(hostile, tmp_path):
    scene, folder = hostile
    with pytest.raises(OLRError, match="only GeoTIFF is accepted") as info:
        prepare_dataset(folder / "passwd.tif", scene.labels, tmp_path / "ds", tile=16)
    assert "root:" not in str(info.value) and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("path", ["/vsicurl/http://127.0.0.1:9/scene.tif", "https://example.org/scene.tif"])
def test_urls_and_gdal_virtual_paths_are_refused_before_gdal_sees_them(path, hostile, tmp_path):
    scene, _ = hostile
    with pytest.raises(OLRError, match="URL or a GDAL virtual path"):
        prepare_dataset(path, scene.labels, tmp_path / "ds", tile=16)
