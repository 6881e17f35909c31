from pathlib import Path

import numpy as np
import pytest

from stcbench.data.resize import bilinear_float, resize_linear_u8

GOLDEN = Path(__file__).parent / "fixtures" / "opencv_inter_linear.npz"


@pytest.mark.parametrize("case", ["kth_noise", "kth_smooth", "up"])
def test_bit_exact_with_opencv_inter_linear(case):
    """Outputs of cv2.resize(..., INTER_LINEAR) (OpenCV 4.14) stored once in the fixture."""
    with np.load(GOLDEN) as golden:
        source, expected = golden[f"{case}_in"], golden[f"{case}_out"]
    ours = resize_linear_u8(source, *expected.shape)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, expected)


def direct_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-pixel-centre bilinear written out pixel by pixel, with replicated borders."""
    src_h, src_w = image.shape
    out = np.empty((height, width))
    for r in range(height):
        fy = min(max((r + 0.5) * src_h / height - 0.5, 0.0), src_h - 1)
        y0 = int(np.floor(fy)); y1 = min(y0 + 1, src_h - 1); ay = fy - y0
        for c in range(width):
            fx = min(max((c + 0.5) * src_w / width - 0.5, 0.0), src_w - 1)
            x0 = int(np.floor(fx)); x1 = min(x0 + 1, src_w - 1); ax = fx - x0
            top = image[y0, x0] * (1 - ax) + image[y0, x1] * ax
            bottom = image[y1, x0] * (1 - ax) + image[y1, x1] * ax
            out[r, c] = top * (1 - ay) + bottom * ay
    return out


def test_float_and_fixed_point_match_the_direct_formula():
    image = np.random.default_rng(3).integers(0, 256, (30, 40), dtype=np.uint8)
    direct = direct_bilinear(image.astype(np.float64), 32, 32)   # same 1.25 / 0.9375 ratios as KTH
    np.testing.assert_allclose(bilinear_float(image, 32, 32), direct, atol=1e-4)
    assert np.abs(resize_linear_u8(image, 32, 32).astype(float) - direct).max() <= 1.0


def test_batched_resize_and_constant_images():
    frames = np.stack([np.full((120, 160), v, np.uint8) for v in (0, 77, 255)])
    out = resize_linear_u8(frames, 128, 128)
    assert out.shape == (3, 128, 128)
    assert [int(out[i].min()) for i in range(3)] == [0, 77, 255]
    assert [int(out[i].max()) for i in range(3)] == [0, 77, 255]


def test_against_installed_opencv_if_available():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(5)
    for shape, size in (((120, 160), (128, 128)), ((37, 53), (20, 90)), ((5, 7), (13, 3))):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resize_linear_u8(image, *size), expected)
