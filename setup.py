"""Builds the extension module sluice._native with CMake (the `python` preset: the library
position-independent, against the shared codec libraries) for the interpreter running pip, and
puts it in the wheel beside python/sluice/*.py. The CMake build directory is build/python, shared
with scripts/build-python.sh, so a second install rebuilds only what changed."""
import os
import shutil
import subprocess
import sys
import sysconfig
import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        options = [f"-DPython3_EXECUTABLE={sys.executable}"]
        try:  # pybind11 from pip, where that is how it came; Debian's is found by CMake itself
            import pybind11
            options.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        subprocess.run(["cmake", "--preset", "python", *options], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "--preset", "python", "--target", "sluice_python"], cwd=ROOT, check=True)
        suffix = sysconfig.get_config_var("EXT_SUFFIX")  # this interpreter's module, not another's
        built = glob.glob(os.path.join(ROOT, "build", "python", "python", "sluice", "_native" + suffix))
        if len(built) != 1:
            raise RuntimeError(f"expected one built module, found {built}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(built[0], target)


setup(ext_modules=[Extension("sluice._native", sources=[])], cmdclass={"build_ext": CMakeBuild})
