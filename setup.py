"""Packaging for ratchet_sel: the library needs nothing beyond the standard library."""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="ratchet_sel",
    version="0.1.0",
    description="WebSocket (RFC 6455, HyBi-10) and socket servers from small components on one selectors loop",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["ratchet_sel", "ratchet_sel.*"]),
    package_data={"ratchet_sel": ["py.typed"]},
    python_requires=">=3.8",
    extras_require={"test": ["pytest", "pytest-timeout", "prometheus_client"]},
    entry_points={"console_scripts": ["ratchet-sel=ratchet_sel.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Operating System :: POSIX",
        "Topic :: Internet :: WWW/HTTP",
        "Typing :: Typed",
    ],
)
