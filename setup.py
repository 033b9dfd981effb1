"""Lists ftq's subpackages under the `ftq` name; metadata and folder mapping are in pyproject."""

from setuptools import find_packages, setup

FOLDERS = ("shared", "services", "migrations")

setup(
    packages=[
        f"ftq.{name}" for name in find_packages(include=[f"{folder}*" for folder in FOLDERS])
    ],
)
