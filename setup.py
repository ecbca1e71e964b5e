"""Package discovery for setuptools; everything else about the distribution is in pyproject.toml.

Every package under ``fastiot/`` is found, and the folder ``widgets/`` with every package below it is
installed under the import name ``fastiot_widgets``, never as a top-level ``widgets`` (which would shadow
a user's own ``widgets.py`` next to their notebook). pyproject.toml alone cannot map a folder to
another import name *and* discover the packages below it, hence these few lines.

Example:
    $ pip wheel --no-deps -w dist .    # tests/workbench/test_wheel.py installs such a wheel and imports it
"""

from __future__ import annotations

from setuptools import find_packages, setup

WIDGETS_PACKAGE = "fastiot_widgets"
WIDGETS_FOLDER = "widgets"

setup(
    packages=[
        *find_packages(include=["fastiot", "fastiot.*"]),
        WIDGETS_PACKAGE,
        *(f"{WIDGETS_PACKAGE}.{name}" for name in find_packages(WIDGETS_FOLDER)),
    ],
    package_dir={WIDGETS_PACKAGE: WIDGETS_FOLDER},
)
