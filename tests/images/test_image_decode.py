"""Decoding and normalization: every accepted format, and every bad image refused with the right param."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from edge.errors import InvalidRequestError
from edge.runtime.images import (ImagePolicy, check_image_count, fit_size, load_image, load_image_base64,
                                 load_image_bytes)

from .conftest import PARAM, data_url, encode, noisy_rgb, png_header_only, solid

RED = (220, 20, 20)


def centre(loaded) -> np.ndarray:
    return loaded.pixels[loaded.height // 2, loaded.width // 2].astype(int)


def assert_close(pixel, expected, tolerance=12):
    assert np.abs(np.asarray(pixel, dtype=int) - np.asarray(expected)).max() <= tolerance, (pixel, expected)


def refused(call, *args, **kwargs) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        call(*args, **kwargs)
    return caught.value


# ------------------------------------------------------------------------------------------ accepted

@pytest.mark.parametrize("fmt, media_type, save_args", [
    ("PNG", "image/png", {}),
    ("JPEG", "image/jpeg", {"quality": 95}),
    ("WEBP", "image/webp", {"lossless": True}),
    ("GIF", "image/gif", {}),
    ("BMP", "image/bmp", {}),
])
def test_every_supported_format_loads_as_rgb(policy, fmt, media_type, save_args):
    loaded = load_image(data_url(encode(solid(RED), fmt, **save_args), media_type), policy, PARAM)
    assert loaded.source_format == fmt
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == (loaded.height, loaded.width, 3)
    assert loaded.original_size == (64, 48)
    assert_close(centre(loaded), RED, tolerance=20)  # GIF's palette and JPEG move colours a little


@pytest.mark.parametrize("image", [
    solid(128, mode="L"), solid((128, 64), mode="LA"), solid(5, mode="P"), solid((0, 0, 0, 0), mode="CMYK"),
], ids=["grey", "grey-alpha", "palette", "cmyk-jpeg"])
def test_other_pixel_modes_become_rgb(policy, image):
    fmt = "JPEG" if image.mode == "CMYK" else "PNG"
    loaded = load_image(data_url(encode(image, fmt)), policy, PARAM)
    assert loaded.pixels.shape[2] == 3


def test_sixteen_bit_grey_is_scaled_not_clipped(policy):
    grey = Image.fromarray(np.full((48, 64), 32896, dtype=np.uint16))  # mid-grey in 16 bits
    loaded = load_image(data_url(encode(grey, "PNG")), policy, PARAM)
    assert_close(centre(loaded), (128, 128, 128), tolerance=2)


def test_gif_gives_its_first_frame(policy):
    frames = [solid(RED), solid((20, 220, 20)), solid((20, 20, 220))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(gif)).n_frames == 3
    assert_close(centre(load_image(data_url(gif, "image/gif"), policy, PARAM)), RED, tolerance=20)


def test_exif_orientation_is_applied(policy):
    # Stored 96 x 48, left half red, right half blue; orientation 6 = "rotate 90° clockwise to view",
    # so the viewer sees 48 x 96 with red on top.
    stored = Image.new("RGB", (96, 48), (20, 20, 220))
    stored.paste(RED, (0, 0, 48, 48))
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(data_url(encode(stored, "JPEG", quality=95, exif=exif), "image/jpeg"), policy, PARAM)
    assert loaded.original_size == (48, 96)
    assert loaded.height > loaded.width
    assert_close(loaded.pixels[loaded.height // 4, loaded.width // 2], RED, tolerance=30)
    assert_close(loaded.pixels[3 * loaded.height // 4, loaded.width // 2], (20, 20, 220), tolerance=30)


def test_alpha_is_composited_on_white(policy):
    image = Image.new("RGBA", (64, 48), (0, 0, 0, 0))  # fully transparent black
    image.paste((255, 0, 0, 128), (0, 0, 32, 48))  # left half: half-transparent red
    loaded = load_image(data_url(encode(image, "PNG")), policy, PARAM)
    assert_close(loaded.pixels[loaded.height // 2, 3 * loaded.width // 4], (255, 255, 255), tolerance=2)
    assert_close(loaded.pixels[loaded.height // 2, loaded.width // 8], (255, 127, 127), tolerance=3)


def test_palette_transparency_is_composited_on_white(policy):
    image = solid(0, mode="P")
    image.info["transparency"] = 0
    assert_close(centre(load_image(data_url(encode(image, "PNG", transparency=0)), policy, PARAM)),
                 (255, 255, 255), tolerance=2)


def test_base64_and_bytes_sources(policy):
    png = encode(solid(RED), "PNG")
    assert load_image_bytes(png, "image/png", policy, PARAM).source_format == "PNG"
    assert load_image_base64(base64.b64encode(png).decode(), "image/png", policy, PARAM).width > 0
    wrapped = "\n".join(base64.encodebytes(png).decode().split("\n"))  # 76-column lines, as MIME writes it
    assert load_image_base64(wrapped, None, policy, PARAM).source_format == "PNG"


def test_declared_media_type_is_a_filter_not_the_truth(policy):
    # A JPEG labelled image/png still decodes: the bytes decide the decoder.
    loaded = load_image(data_url(encode(solid(RED), "JPEG"), "image/png"), policy, PARAM)
    assert loaded.source_format == "JPEG"


# ----------------------------------------------------------------------------------------- refused

TEXT = b"Hello, this is not an image at all.\n"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'


@pytest.mark.parametrize("data, words", [
    (bytes(range(256)) * 4, "not a recognizable image"),
    (TEXT, "text, not an image"),
    (SVG, "SVG images are not supported"),
    (encode(solid(RED), "TIFF"), "TIFF images are not supported"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "starts like PNG but its header is invalid"),
    (b"", "empty"),
], ids=["garbage", "text", "svg", "tiff", "bad-png-header", "empty"])
def test_non_images_are_refused_with_what_they_are(policy, data, words):
    error = refused(load_image, data_url(data, "application/octet-stream"), policy, PARAM)
    assert error.param == PARAM and words in error.message
    if data:
        assert "PNG, JPEG, WebP, GIF or BMP" in error.message


def test_truncated_png_is_refused(policy):
    png = encode(noisy_rgb(), "PNG")
    error = refused(load_image, data_url(png[: len(png) // 2]), policy, PARAM)
    assert error.param == PARAM and "PNG image is corrupt or truncated" in error.message


def test_corrupt_jpeg_body_is_refused(policy):
    jpeg = bytearray(encode(noisy_rgb(), "JPEG"))
    jpeg[len(jpeg) // 2:] = b"\x00" * (len(jpeg) - len(jpeg) // 2)
    error = refused(load_image, data_url(bytes(jpeg[: len(jpeg) * 2 // 3]), "image/jpeg"), policy, PARAM)
    assert "JPEG image is corrupt or truncated" in error.message


@pytest.mark.parametrize("url, words", [
    ("data:image/png;base64,iVBORw0KGgo*!*", "base64 data is invalid"),
    ("data:image/png;base64,iVBORw0KGgoAA", "base64 data is invalid"),  # bad padding
    ("data:image/png,%89PNG", "must be base64-encoded"),
    ("data:image/png;base64", "no ','"),
    ("data:text/plain;base64,SGVsbG8=", "unsupported image media type 'text/plain'"),
    ("data:image/svg+xml;base64,PHN2Zy8+", "unsupported image media type 'image/svg+xml'"),
    ("ftp://example.com/cat.png", "unsupported image URL"),
    ("cat.png", "unsupported image URL"),
])
def test_bad_urls_are_refused(policy, url, words):
    error = refused(load_image, url, policy, PARAM)
    assert error.param == PARAM and words in error.message


def test_too_many_bytes_is_refused_before_decoding(policy):
    small = ImagePolicy(max_bytes=1000)
    png = encode(noisy_rgb(), "PNG")
    error = refused(load_image, data_url(png), small, PARAM)
    assert error.param == PARAM and "limit is 1,000 bytes" in error.message and error.code == "image_too_large"
    assert refused(load_image_bytes, png, None, small, PARAM).code == "image_too_large"


def test_too_many_pixels_is_refused_from_the_header(policy):
    bomb = png_header_only(8000, 8000)  # 64 MP claimed in ~100 bytes
    error = refused(load_image, data_url(bomb), policy, PARAM)
    assert error.param == PARAM and "8000 x 8000 = 64,000,000 pixels" in error.message
    assert "limit is 50,000,000" in error.message


def test_pillow_decompression_bomb_guard_is_reported_as_too_many_pixels(policy):
    error = refused(load_image, data_url(png_header_only(100_000, 100_000)), policy, PARAM)
    assert error.code == "image_too_large" and "too many pixels" in error.message


def test_pixel_cap_follows_the_policy():
    error = refused(load_image, data_url(encode(solid(RED), "PNG")), ImagePolicy(max_pixels=1000), PARAM)
    assert "64 x 48 = 3,072 pixels" in error.message


def test_too_many_images(policy):
    check_image_count(16, policy, "messages")
    error = refused(check_image_count, 17, policy, "messages")
    assert error.param == "messages" and "17 images" in error.message and "at most 16" in error.message


def test_unknown_detail_names_the_detail_field(policy):
    error = refused(load_image, data_url(encode(solid(RED), "PNG")), policy, PARAM, "ultra")
    assert error.param == PARAM + ".detail" and "low, auto, high" in error.message
    error = refused(load_image, data_url(encode(solid(RED), "PNG")), policy, PARAM, "ultra",
                    detail_param="input[0].content[1].detail")
    assert error.param == "input[0].content[1].detail"


def test_error_messages_do_not_echo_megabytes_of_data(policy):
    error = refused(load_image, "gopher:" + "A" * 100_000, policy, PARAM)
    assert len(error.message) < 400


@pytest.mark.parametrize("orientation, upright", [(1, (1600, 1200)), (6, (1200, 1600))])
def test_large_jpeg_decodes_reduced_but_reports_and_fits_its_real_size(policy, orientation, upright):
    # JPEG decoding uses DCT downscaling (draft) for small budgets; sizes must not depend on it.
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = encode(noisy_rgb(1600, 1200), "JPEG", exif=exif)
    loaded = load_image(data_url(photo, "image/jpeg"), policy, PARAM, "low")
    assert loaded.original_size == upright
    assert (loaded.width, loaded.height) == fit_size(*upright, 70)
