"""pip's way in (pyproject.toml): setuptools builds the one extension, rnnkit._rnnkit, by running
the project's own CMake build, as pybind11's cmake_example does. The library it links,
librnnkit, is copied beside it and found through the extension's run path ($ORIGIN), so a
wheel carries everything that is not torch's or the system's.

The CMake build lives in build/python-<tag>/ at the root of the tree, whichever front end asks
(pip install ., pip install -e ., python -m build --wheel): the second and third builds are
incremental. RNNKIT_CMAKE_ARGS adds arguments (e.g. "-DRNNKIT_BUILD_APPS=OFF" for the modules
alone, without load_checkpoint); CMAKE_BUILD_PARALLEL_LEVEL sets the jobs.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def version():
    """The version has one home, CMakeLists.txt's project()."""
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    m = re.search(r"project\(rnnkit VERSION ([0-9.]+)", text)
    if not m:
        raise RuntimeError("CMakeLists.txt: expected project(rnnkit VERSION x.y.z ...)")
    return m.group(1)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        try:
            import torch
        except ImportError as e:
            raise RuntimeError(f"rnnkit builds against the torch this interpreter imports "
                               f"({sys.executable}), and it has none: {e}. On Debian: "
                               f"apt-get install python3-torch, and a venv made with "
                               f"--system-site-packages") from None
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        tag = sysconfig.get_config_var("SOABI") or f"py{sys.version_info[0]}{sys.version_info[1]}"
        build = ROOT / "build" / f"python-{tag}"
        build.mkdir(parents=True, exist_ok=True)
        args = [
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DRNNKIT_BUILD_PYTHON=ON",
            "-DRNNKIT_BUILD_TESTS=OFF",
            "-DRNNKIT_BUILD_BENCH=OFF",
            "-DRNNKIT_PYTHON_PACKAGE=ON",
            # The extension exports nothing to ONNX: the apps' export code (protobuf) would only
            # lengthen the build.
            "-DRNNKIT_ONNX_EXPORT=OFF",
        ]
        # An official torch wheel carries its TorchConfig.cmake; Debian's is found by CMake alone.
        torch_cmake = Path(torch.utils.cmake_prefix_path)
        if torch_cmake.is_dir():
            args.append(f"-DCMAKE_PREFIX_PATH={torch_cmake}")
        if shutil.which("ninja") and not (build / "CMakeCache.txt").exists():
            args += ["-G", "Ninja"]
        args += shlex.split(os.environ.get("RNNKIT_CMAKE_ARGS", ""))
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), *args], check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
        subprocess.run(["cmake", "--build", str(build), "--target", "rnnkit_python",
                        "--parallel", jobs], check=True)

        built = build / "python" / "rnnkit"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built / target.name, target)
        # librnnkit under its soname, the name the extension asks the loader for: CMake's
        # librnnkit.so is a link to the soname, itself a link to the file.
        namelink = build / "modules" / "librnnkit.so"
        self._extras = {built / "_build_info.py": "_build_info.py",
                        namelink.resolve(): os.readlink(namelink)}
        for source, name in self._extras.items():
            shutil.copyfile(source, target.parent / name)

    def copy_extensions_to_source(self):
        """pip install -e: setuptools copies the extension into python/rnnkit/; the files it
        needs beside it go there too."""
        super().copy_extensions_to_source()
        package = ROOT / "python" / "rnnkit"
        for source, name in getattr(self, "_extras", {}).items():
            shutil.copyfile(source, package / name)

setup(
    version=version(),
    ext_modules=[CMakeExtension("rnnkit._rnnkit")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
