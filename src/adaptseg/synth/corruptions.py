"""Target corruptions: shifts of other kinds than the generator's own appearance shift.

Modelled on the ImageNet-C / Cityscapes-C corruption families (Hendrycks & Dietterich, 2019) and written
from their descriptions: weather (``fog``, ``rain``, ``snow``), sensor noise (``gaussian_noise``,
``shot_noise``), blur (``defocus_blur``, ``motion_blur``), compression (``jpeg``) and ``contrast`` loss, each
at a severity from 1 (mild) to 5 (strong). An adaptation method tuned on the appearance shift can then be
tested on shifts it was not tuned for.

``CORRUPTIONS[kind](image, rng, severity)`` takes an HxWx3 ``uint8`` image and returns a new one of the same
size. Every random number comes from ``rng``, so equal seeds give equal bytes. Wherever a kind is random, its
random fields are drawn the same way at every severity (the severity only scales or thresholds them; shot
noise, whose Poisson draws depend on the photon count, is the exception), so with equal seeds a higher
severity adds to a lower one's corruption: the flakes and streaks of severity 2 include those of severity 1.
Sizes in pixels are chosen for the benchmark's 256x128 images (standing for Cityscapes at 1024x512). Each
function keeps its severity table at its top: one value per severity 1..5.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

SEVERITIES = (1, 2, 3, 4, 5)

Corruption = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]

# --------------------------------------------------------------------------------------------- helpers


def _level(table: Sequence, severity: int):
    """The table entry of ``severity``; anything but an integer 1..5 is an error naming it."""
    integer = isinstance(severity, (int, np.integer)) and not isinstance(severity, bool)
    if not integer or severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in {list(SEVERITIES)}, got {severity!r}.")
    return table[int(severity) - 1]


def _as_float(image: np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 image as float32 in [0, 1]; other shapes or types are an error naming them."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Expected an HxWx3 uint8 image, got shape {image.shape} and dtype {image.dtype}.")
    return image.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Back to uint8: rounded and clipped, so that values outside [0, 1] saturate instead of wrapping."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``x`` (HxW or HxWxC) convolved with an odd-sized ``kernel``, edges reflected; by FFT, so that large
    kernels cost no more than small ones."""
    kh, kw = kernel.shape
    ry, rx = kh // 2, kw // 2
    pad = ((ry, ry), (rx, rx)) + ((0, 0),) * (x.ndim - 2)
    padded = np.pad(x, pad, mode="reflect" if min(x.shape[:2]) > max(ry, rx) else "edge")
    ph, pw = padded.shape[:2]
    # The kernel's centre at (0, 0), wrapping: the circular convolution of the padded image is then the
    # linear one wherever the kernel stays inside the padding, i.e. on the whole original image.
    full = np.zeros((ph, pw), dtype=np.float64)
    full[:kh, :kw] = kernel
    full = np.roll(full, (-ry, -rx), axis=(0, 1))
    spectrum = np.fft.rfft2(full)
    if x.ndim == 3:
        spectrum = spectrum[:, :, None]
    out = np.fft.irfft2(np.fft.rfft2(padded, axes=(0, 1)) * spectrum, s=(ph, pw), axes=(0, 1))
    return out[ry : ry + x.shape[0], rx : rx + x.shape[1]].astype(np.float32)


def _disk(radius: float) -> np.ndarray:
    """A flat disk of ``radius`` pixels with an anti-aliased rim (4x4 supersampling), summing to 1."""
    r = int(math.ceil(radius))
    sub = (np.arange(4 * (2 * r + 1)) + 0.5) / 4 - (r + 0.5)  # sub-pixel centres
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2 <= radius**2).astype(np.float64)
    kernel = inside.reshape(2 * r + 1, 4, 2 * r + 1, 4).mean(axis=(1, 3))
    return kernel / kernel.sum()


def _line(length: float, angle: float) -> np.ndarray:
    """A one-pixel-wide line of ``length`` pixels through the centre at ``angle`` (radians, 0: horizontal,
    positive: clockwise in image coordinates), splatted bilinearly; its largest weight is 1."""
    r = int(math.ceil(length / 2)) + 1
    t = np.linspace(-length / 2, length / 2, max(int(length * 4), 2))
    xs, ys = r + t * math.cos(angle), r + t * math.sin(angle)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    kernel = np.zeros((2 * r + 2, 2 * r + 2))
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(kernel, (y0 + dy, x0 + dx), wy * wx)
    return kernel[: 2 * r + 1, : 2 * r + 1] / kernel.max()


def _blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a uint8 image by Pillow (radius 0: unchanged)."""
    if radius <= 0:
        return image
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def _value_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 6, decay: float = 0.6):
    """Smooth fractal noise in [0, 1]: random grids of doubling resolution, bicubically upsampled and summed
    with amplitudes ``decay**octave`` (coarse blobs plus finer wisps, like plasma-fractal fog)."""
    total = np.zeros((height, width), dtype=np.float32)
    for octave in range(octaves):
        cells = 2 ** (octave + 1)  # across the width; rows keep the image's aspect ratio
        grid = rng.random((max(2, cells * height // width + 1), cells + 1), dtype=np.float32)
        up = Image.fromarray(grid).resize((width, height), Image.BICUBIC)
        total += decay**octave * np.asarray(up, dtype=np.float32)
    low, high = total.min(), total.max()
    return (total - low) / max(high - low, 1e-6)


# --------------------------------------------------------------------------------------------- weather


def fog(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """A smooth fractal haze blended towards light grey: contrast and colour fade, unevenly over the image."""
    # density: the haze's largest opacity (locally 0.45x to 1x of it, following the fractal).
    density = _level((0.3, 0.42, 0.54, 0.66, 0.78), severity)
    x = _as_float(image)
    haze = _value_noise(rng, *x.shape[:2])
    alpha = (density * (0.45 + 0.55 * haze))[:, :, None]
    grey = np.array([0.80, 0.81, 0.83], dtype=np.float32)  # slightly bluish light grey
    return _to_uint8(x * (1 - alpha) + grey * alpha)


def rain(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Thin slanted bright streaks over a slightly darker, slightly blurred scene."""
    # per severity: drops (fraction of pixels that start a streak), streak length (px), streak opacity,
    # darkening of the scene (fraction) and its blur (Gaussian radius, px).
    drops = _level((0.002, 0.004, 0.007, 0.011, 0.016), severity)
    length = _level((6, 8, 10, 13, 16), severity)
    opacity = _level((0.35, 0.45, 0.55, 0.65, 0.75), severity)
    darken = _level((0.06, 0.09, 0.12, 0.15, 0.18), severity)
    blur = _level((0.3, 0.5, 0.7, 0.9, 1.1), severity)
    h, w = _as_float(image).shape[:2]
    slant = math.radians(rng.uniform(8, 22)) * rng.choice((-1.0, 1.0))  # from the vertical, one per image
    seeds = rng.random((h, w), dtype=np.float32)
    strength = rng.uniform(0.5, 1.0, size=(h, w)).astype(np.float32)  # per drop
    dots = np.where(seeds < drops, strength, 0.0).astype(np.float32)
    streaks = np.clip(_convolve(dots, _line(length, math.pi / 2 + slant)), 0, 1) * opacity
    x = _as_float(_blur(image, blur)) * (1 - darken)
    colour = np.array([0.86, 0.88, 0.92], dtype=np.float32)
    s = streaks[:, :, None]
    return _to_uint8(x * (1 - s) + colour * s)


def snow(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Soft round flakes of three sizes over a brightened (whitened) scene."""
    # per severity: flakes (fraction of pixels that seed a flake, over all sizes), brightening (the scene's
    # fraction moved towards white) and flake opacity.
    flakes = _level((0.002, 0.004, 0.006, 0.009, 0.013), severity)
    brighten = _level((0.08, 0.13, 0.18, 0.24, 0.3), severity)
    opacity = _level((0.7, 0.75, 0.8, 0.85, 0.9), severity)
    sizes = ((0.8, 0.6), (1.4, 0.3), (2.2, 0.1))  # (radius px, share of the flakes)
    x = _as_float(image)
    h, w = x.shape[:2]
    layer = np.zeros((h, w), dtype=np.float32)
    for radius, share in sizes:
        seeds = rng.random((h, w), dtype=np.float32)
        strength = rng.uniform(0.6, 1.0, size=(h, w)).astype(np.float32)  # per flake
        dots = np.where(seeds < flakes * share, strength, 0.0).astype(np.float32)
        disk = _disk(radius)
        layer = np.maximum(layer, _convolve(dots, disk / disk.max()))
    x = 1 - (1 - x) * (1 - brighten)
    s = (np.clip(layer, 0, 1) * opacity)[:, :, None]
    return _to_uint8(x * (1 - s) + s)


# --------------------------------------------------------------------------------------------- noise


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Additive N(0, sigma) noise per pixel and channel on the [0, 1] scale (read-out, amplifier noise)."""
    # sigma: the noise's standard deviation on the [0, 1] scale.
    sigma = _level((0.04, 0.07, 0.11, 0.16, 0.22), severity)
    x = _as_float(image)
    return _to_uint8(x + sigma * rng.standard_normal(x.shape, dtype=np.float32))


def shot_noise(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Poisson (photon) noise: each value is a photon count at ``photons`` per unit intensity, so dark pixels
    are relatively noisier than bright ones."""
    # photons: the photon count of a full-scale (1.0) pixel; fewer photons, more noise.
    photons = _level((150, 60, 28, 13, 6), severity)
    x = _as_float(image)
    return _to_uint8(rng.poisson(x * photons).astype(np.float32) / photons)


# --------------------------------------------------------------------------------------------- blur


def defocus_blur(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """An out-of-focus lens: the image convolved with a disk (the aperture's image)."""
    # radius: the disk's radius in pixels.
    radius = _level((1.0, 1.5, 2.2, 3.0, 4.0), severity)
    return _to_uint8(_convolve(_as_float(image), _disk(radius)))


def motion_blur(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Camera motion during the exposure: the image convolved with a line at a random angle."""
    # length: the line's length in pixels.
    length = _level((3, 5, 7, 10, 14), severity)
    angle = rng.uniform(-math.pi / 2, math.pi / 2)
    kernel = _line(length, angle)
    return _to_uint8(_convolve(_as_float(image), kernel / kernel.sum()))


# --------------------------------------------------------------------------------------------- digital


def jpeg(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Lossy compression: JPEG re-encoding by Pillow (blocking, ringing, chroma loss).

    An image already compressed at about the same quality changes little (JPEG is nearly idempotent); the
    benchmark's own ``appearance.jpeg`` of 0.4 compresses at 70..92, above every quality here.
    """
    # quality: Pillow's JPEG quality (1..95), lower is coarser.
    quality = _level((45, 30, 20, 12, 8), severity)
    _as_float(image)  # the shape and type check
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return np.array(Image.open(buffer).convert("RGB"))


def contrast(image: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Contrast loss (low light, a dirty lens): every pixel pulled towards its channel's image mean."""
    # factor: how much of each pixel's distance to the mean is kept.
    factor = _level((0.6, 0.45, 0.33, 0.23, 0.15), severity)
    x = _as_float(image)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return _to_uint8(mean + (x - mean) * factor)


#: Kind name → ``(image HxWx3 uint8, rng, severity 1..5) -> image HxWx3 uint8``.
CORRUPTIONS: dict[str, Corruption] = {
    "fog": fog,
    "rain": rain,
    "snow": snow,
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "jpeg": jpeg,
    "contrast": contrast,
}
