"""The readers as they were at an earlier git commit, loaded side by side with the current ones (before/after
measurements in one process, on the same files)."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import types

from common import ROOT

# The commits before the input-pipeline work of issue #6 and of issue #15 (the parsed-video cache).
BEFORE_ISSUE_6 = "44b5dcd"
BEFORE_ISSUE_15 = "9ba1bd1"


def _source(ref, path):
    return subprocess.run(["git", "-C", ROOT, "show", f"{ref}:{path}"], check=True, capture_output=True,
                          text=True).stdout


def load_readers(ref=BEFORE_ISSUE_6):
    """A namespace with FrameLevelReader and VideoLevelReader of `ref` (readers/files.py is the current one)."""
    import readers  # noqa: F401  (the current package: files, quantization)

    modules = {}
    saved = {name: sys.modules.get(name) for name in ("readers.base",)}
    folder = tempfile.mkdtemp(prefix=f"readers_{ref}_")  # real files, so autograph can read the source
    try:
        for name in ("base", "frame_level", "video_level"):
            path = os.path.join(folder, f"{name}.py")
            with open(path, "w") as f:
                f.write(_source(ref, f"readers/{name}.py"))
            spec = importlib.util.spec_from_file_location(f"readers_{ref}_{name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            modules[name] = module
            if name == "base":
                sys.modules["readers.base"] = module  # the old frame/video modules import the old base
    finally:
        for name, module in saved.items():
            sys.modules[name] = module
    return types.SimpleNamespace(FrameLevelReader=modules["frame_level"].FrameLevelReader,
                                 VideoLevelReader=modules["video_level"].VideoLevelReader, ref=ref)


def available(ref=BEFORE_ISSUE_6):
    return importlib.util.find_spec("readers") is not None and subprocess.run(
        ["git", "-C", ROOT, "cat-file", "-e", f"{ref}:readers/frame_level.py"], capture_output=True).returncode == 0


def load_module(path, ref=BEFORE_ISSUE_6):
    """One module of the project (e.g. 'yt8m_tf/metrics.py') as it was at `ref`, imported under another name."""
    folder = tempfile.mkdtemp(prefix=f"ref_{ref}_")
    target = os.path.join(folder, os.path.basename(path))
    with open(target, "w") as f:
        f.write(_source(ref, path))
    name = f"ref_{ref}_" + path.replace("/", "_").replace(".py", "")
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
