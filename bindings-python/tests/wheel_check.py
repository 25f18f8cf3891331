"""Run by `make test-python-wheel` in a fresh venv where the release wheel was installed with no Rust
on PATH: the installed package works, and the artefacts in dist/ are what we ship.

    python tests/wheel_check.py DIST_DIR
"""

from __future__ import annotations

import shutil
import struct
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

LICENCES = {"LICENSE-MIT", "LICENSE-APACHE"}


def elf_section_names(path: Path) -> set[str]:
    """The section names of a 64-bit little-endian ELF file (enough to see whether it is stripped)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a 64-bit little-endian ELF"
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    strtab_offset = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
    names = set()
    for index in range(shnum):
        name_offset = struct.unpack_from("<I", data, shoff + index * shentsize)[0]
        start = strtab_offset + name_offset
        names.add(data[start : data.index(b"\0", start)].decode())
    return names


def main(dist: Path) -> None:
    assert shutil.which("cargo") is None and shutil.which("rustc") is None, "Rust is on PATH"

    import twilio_signature
    from twilio_signature import RequestValidator, SignatureMismatchError, Validator

    package = Path(twilio_signature.__file__).resolve().parent
    assert str(package).startswith(str(Path(sys.prefix).resolve())), f"not the wheel's package: {package}"

    validator = Validator({"KS1": "wheel-token"})
    url, body = "https://example.com/sms?x=1", b"From=%2B14155550100&Body=hi"
    verified = validator.verify(url, body, validator.sign(url, body))
    assert repr(verified).startswith("Verified(secret_index=0, key_id='KS1',"), repr(verified)
    try:
        validator.verify(url, body + b"!", validator.sign(url, body))
        raise AssertionError("a tampered body was accepted")
    except SignatureMismatchError:
        pass
    drop_in = RequestValidator("wheel-token")
    params = {"From": "+14155550100", "Body": "hi"}
    assert drop_in.validate(url, params, drop_in.compute_signature(url, params))
    try:
        Validator(" \n")
        raise AssertionError("a whitespace secret was accepted")
    except ValueError:
        pass

    installed = {Path(str(f)).name for f in metadata.files("twilio-signature") or ()}
    assert LICENCES <= installed, f"licence files missing from the installed wheel: {installed}"
    native = next(package.glob("_native*.so"))
    sections = elf_section_names(native)
    assert not {".symtab", ".debug_info", ".debug_line"} & sections, f"not stripped: {sorted(sections)}"

    (wheel,) = dist.glob("twilio_signature-*.whl")
    assert "-cp310-abi3-manylinux2014_x86_64" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as archive:
        assert LICENCES <= {Path(name).name for name in archive.namelist()}
    (sdist,) = dist.glob("twilio_signature-*.tar.gz")
    with tarfile.open(sdist) as archive:
        top = {Path(name).name for name in archive.getnames() if name.count("/") == 1}
    assert LICENCES <= top, f"licence files missing from the sdist: {top}"
    size = wheel.stat().st_size
    print(f"wheel ok: {wheel.name} ({size} bytes), {native.name} stripped, no Rust on PATH")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
