"""Preprocessing equals torchvision's transforms; awkward inputs convert or reject as documented."""

from __future__ import annotations

import io

import numpy as np
import pytest
from make_fixtures import BAD_EXPECTED
from PIL import Image
from torchvision import transforms

from featurizers.preprocess import RejectedImage, decode_rgb, prepare
from featurizers.zoo import ZOO


def torchvision_tensor(data: bytes, prep) -> np.ndarray:
    interpolation = transforms.InterpolationMode(prep.interpolation)
    pipeline = transforms.Compose(
        [
            transforms.Resize(prep.resize, interpolation=interpolation),
            transforms.CenterCrop(prep.crop),
            transforms.ToTensor(),
            transforms.Normalize(prep.mean, prep.std),
        ]
    )
    return pipeline(Image.open(io.BytesIO(data)).convert("RGB")).numpy()


@pytest.mark.parametrize("model", sorted(ZOO))
@pytest.mark.parametrize("name", ["rgb_odd_size.png", "tall_thin.tif", "cmyk.jpg", "grey.png"])
def test_equals_torchvision(fixtures, model, name):
    data = (fixtures / "bad" / name).read_bytes()
    prep = ZOO[model].preprocessing
    ours = prepare(data, prep)
    assert ours.shape == (3, prep.crop, prep.crop) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, torchvision_tensor(data, prep), atol=1e-5)


def test_each_awkward_input_is_converted_or_rejected_with_its_reason(fixtures):
    prep = ZOO["resnet18"].preprocessing
    for name, code in BAD_EXPECTED.items():
        data = (fixtures / "bad" / name).read_bytes()
        if code is None:
            assert prepare(data, prep).shape == (3, 224, 224), name
        else:
            with pytest.raises(RejectedImage) as err:
                prepare(data, prep)
            assert err.value.reason.startswith(f"{code}: "), (name, err.value.reason)


def test_mode_conversions_are_the_documented_ones(fixtures):
    grey16 = Image.open(fixtures / "bad" / "grey16.png")
    raw = np.asarray(grey16).astype(np.int64)
    rgb = np.asarray(decode_rgb((fixtures / "bad" / "grey16.png").read_bytes()))
    assert np.array_equal(rgb[..., 0], (raw >> 8).astype(np.uint8))  # top 8 of 16 bits
    assert np.array_equal(rgb[..., 0], rgb[..., 2])
    rgba = Image.open(fixtures / "bad" / "rgba.png")
    assert np.array_equal(
        np.asarray(decode_rgb((fixtures / "bad" / "rgba.png").read_bytes())), np.asarray(rgba)[..., :3]
    )


def test_pixel_limit_is_a_parameter(fixtures):
    data = (fixtures / "bad" / "rgb_odd_size.png").read_bytes()
    with pytest.raises(RejectedImage, match="too_large: 37x301 pixels exceeds the limit of 1000"):
        decode_rgb(data, max_pixels=1000)
