"""A folder of a user's own images: found recursively, read as 8-bit RGB, odd files converted or named.

Users bring whatever their camera, phone or video tool wrote, not a curated dataset, so nothing here may
turn an odd file into a silently wrong prediction. Every image becomes the 8-bit RGB array that training
fed the network (``adaptseg.data.torch_datasets.load_image``), and every conversion on the way is said:

- grayscale, grayscale + alpha, RGBA, paletted and CMYK images are converted (alpha dropped, palette
  applied); a 16-bit PNG is scaled to 8 bits (Pillow would clip a 16-bit grayscale PNG to white, and it
  truncates 16-bit colour PNGs);
- a JPEG with an EXIF orientation is turned upright, as every viewer shows it (the network has only seen
  upright streets);
- a file that cannot be decoded (truncated, corrupt, not an image despite its suffix) is named and skipped;
- files that are not JPEG or PNG are ignored and counted, as are hidden files and the folders ``predict``
  wrote itself (an output folder inside the input folder is not read back as input on the next run).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from adaptseg.data.png16 import png_bit_depth, read_png16

#: Suffixes read as images (case-insensitive): JPEG and PNG; video frames are just files of these.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: The file every output folder of ``predict`` holds; a folder with it is never read as input.
OUTPUT_MARKER = ".adaptseg-predict"


class NoImagesError(ValueError):
    """The input folder does not exist, or holds no JPEG or PNG image."""


class UnreadableImageError(ValueError):
    """One image file that cannot be decoded; the message says why."""


@dataclass(frozen=True)
class UserImage:
    """One image as the network's preprocessing takes it: H×W×3 uint8 RGB, and what was done to get there."""

    rgb: np.ndarray
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageFolder:
    """What a scan of a user's folder found: the images to segment, in sorted order, and what it left out.

    ``images`` maps each output key (the relative path without suffix, POSIX separators) to its file;
    ``renamed`` names the images whose key keeps their suffix because another image has the same stem
    (``a.jpg`` and ``a.png``); ``ignored`` counts the files left out, by reason.
    """

    root: Path
    images: dict[str, Path]
    renamed: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, list[str]] = field(default_factory=dict)

    def read(self, key: str) -> UserImage:
        """The image of ``key`` as 8-bit RGB (see :func:`read_user_image`)."""
        return read_user_image(self.images[key])

    def name(self, key: str) -> str:
        """The file of ``key`` relative to the folder, as the user named it (``sub/a.jpg``)."""
        return self.images[key].relative_to(self.root).as_posix()


def _ignore_reason(relative: PurePosixPath) -> str | None:
    """Why a file is left out of the scan (None: it is an image to read)."""
    if any(part.startswith(".") for part in relative.parts):
        return "hidden"
    if relative.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not JPEG or PNG ({relative.suffix.lower() or 'no suffix'})"
    return None


def _output_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that an earlier ``predict`` wrote (they hold :data:`OUTPUT_MARKER`)."""
    return [marker.parent for marker in root.rglob(OUTPUT_MARKER) if marker.parent != root]


def scan_image_folder(root: str | Path) -> ImageFolder:
    """Every JPEG and PNG under ``root`` (recursively, sorted by relative path), keyed for the outputs.

    An input folder that does not exist, or holds no image, is an error naming it and what it found.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.is_file() else "does not exist"
        raise NoImagesError(f"Input folder {root} {what}: pass the folder that holds your JPEG or PNG images")
    skipped_folders = _output_folders(root)
    ignored: dict[str, list[str]] = {}
    found: list[PurePosixPath] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if any(folder in path.parents for folder in skipped_folders):
            reason: str | None = "in an output folder of predict"
        else:
            reason = _ignore_reason(relative)
        if reason is None:
            found.append(relative)
        else:
            ignored.setdefault(reason, []).append(str(relative))
    if not found:
        left_out = "; ".join(f"{len(names)} {reason}" for reason, names in ignored.items()) or "it is empty"
        raise NoImagesError(
            f"Input folder {root} holds no JPEG or PNG image ({left_out}). Pass the folder that holds your "
            f"images (searched recursively; suffixes {', '.join(IMAGE_SUFFIXES)})."
        )
    stems = Counter(str(r.with_suffix("")) for r in found)
    images: dict[str, Path] = {}
    renamed: dict[str, str] = {}
    for relative in found:
        key = str(relative.with_suffix(""))
        if stems[key] > 1:  # a.jpg and a.png would both write a.png: keep the suffix in both names
            key = str(relative)
            note = f"another image differs only in its suffix: its outputs are named {relative.name}.png"
            renamed[str(relative)] = note
        images[key] = root / Path(*relative.parts)
    return ImageFolder(root=root, images=images, renamed=renamed, ignored=ignored)


def _sixteen_bit_rgb(path: Path) -> tuple[np.ndarray, list[str]]:
    """A 16-bit PNG scaled to 8-bit RGB (65535 → 255, rounded), with the conversions said."""
    try:
        array = read_png16(path)
    except ValueError as error:
        raise UnreadableImageError(f"not a decodable 16-bit PNG ({error})") from error
    notes = ["16-bit, scaled to 8 bits"]
    array = np.rint(array.astype(np.float32) / 257.0).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels in (2, 4):
        notes.append("alpha channel dropped")
        array = array[:, :, : channels - 1]
    if array.shape[2] == 1:
        notes.append("grayscale, converted to RGB")
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array), notes


#: Pillow modes converted to RGB, and what the conversion is called in the log.
_CONVERSIONS = {
    "1": "black and white, converted to RGB",
    "L": "grayscale, converted to RGB",
    "LA": "grayscale with alpha, converted to RGB (alpha dropped)",
    "RGBA": "alpha channel dropped",
    "RGBa": "alpha channel dropped",
    "P": "paletted, palette applied",
    "PA": "paletted with alpha, palette applied (alpha dropped)",
    "CMYK": "CMYK, converted to RGB",
    "YCbCr": "YCbCr, converted to RGB",
}


def _pil_rgb(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """An 8-bit Pillow image (already decoded) as RGB, with the conversions said."""
    notes = []
    if getattr(image, "n_frames", 1) > 1:
        notes.append(f"animated ({image.n_frames} frames), first frame used")
    if _orientation(image) not in (None, 1):
        image = ImageOps.exif_transpose(image)
        notes.append("turned upright as its EXIF orientation says")
    if image.mode != "RGB":
        if image.mode not in _CONVERSIONS:
            raise UnreadableImageError(f"pixel mode {image.mode!r} has no safe conversion to 8-bit RGB")
        notes.append(_CONVERSIONS[image.mode])
        if image.mode == "P":  # a transparent palette entry: through RGBA, as Pillow advises
            image = image.convert("RGBA")
        image = image.convert("RGB")
    return np.asarray(image), notes


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block: the pixels are still fine
        return None


def read_user_image(path: str | Path) -> UserImage:
    """The image at ``path`` as H×W×3 uint8 RGB, and the conversions made; :class:`UnreadableImageError`
    names why a file cannot be read (the caller names the file)."""
    path = Path(path)
    try:
        if png_bit_depth(path) == 16:  # by its header: a 16-bit PNG named .jpg is one too
            rgb, notes = _sixteen_bit_rgb(path)
            return UserImage(rgb, tuple(notes))
        with Image.open(path) as image:
            image.load()
            rgb, notes = _pil_rgb(image)
    except UnreadableImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # Pillow: UnidentifiedImageError (an OSError) for a non-image, OSError "image file is truncated" for
        # a cut-off file, SyntaxError for a broken PNG chunk, DecompressionBomb* for absurd sizes
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UnreadableImageError(f"cannot be decoded ({type(error).__name__}: {reason})") from error
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise UnreadableImageError(f"decoded to an unexpected array {rgb.dtype} {rgb.shape}")
    return UserImage(np.ascontiguousarray(rgb), tuple(notes))


def folder_problems(input_folder: str | Path, output_folder: str | Path) -> list[str]:
    """Why writing ``output_folder`` would harm ``input_folder`` (empty when it would not).

    The output folder is replaced as a whole when it is written: it must not be the input folder, nor hold it.
    One inside the input is fine: the scan skips folders that ``predict`` wrote.
    """
    source, target = Path(input_folder).resolve(), Path(output_folder).resolve()
    if source == target:
        return [f"output folder {output_folder} is the input folder: the outputs would replace your images"]
    if target in source.parents:
        return [f"output folder {output_folder} holds the input folder {input_folder}: writing it would "
                "replace your images"]
    return []
