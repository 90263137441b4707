"""Where pixlift's packages live: ``daemon/`` is the ``pixlift`` package and ``ui/`` its ``pixlift.ui`` data
package. Every subpackage of ``daemon/`` is found here, so a new one is in the wheel without an edit; the rest
of the metadata is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=["pixlift", *(f"pixlift.{name}" for name in find_packages("daemon")), "pixlift.ui"],
    package_dir={"pixlift": "daemon", "pixlift.ui": "ui"},
)
