"""Rebuild the 宋词 corpus (diy/corpora/songci.jsonl.xz) byte for byte from the npm package.

    python -m tools.build_songci                  # npm pack chinese-poetry@2.0.1, check, write
    python -m tools.build_songci --tarball PATH   # the same from a tarball you already have
    python -m tools.build_songci --check          # rebuild and compare; writes nothing

Three sha256s are pinned: the npm tarball (the input), the JSONL text (the content) and the
.xz file (the bytes the course loads; that one lives in diy.pretraining.corpus). Nothing is
written unless all three match, so a learner's corpus can never be replaced by a different one.

What is kept: every ``package/dist/songci/ci.song.N.json``, the numbered files in numeric order
of N and then ``ci.song.2019y.json`` (3 more ci); in each file every ci in
source order, with its ``rhythmic``, ``author`` and ``paragraphs`` exactly as in the source
(``tags`` and the 6 ``prologue`` prefaces are left out). Nothing is dropped or edited:
diy/corpora/README.md lists the oddities of the source text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from diy.pretraining.corpus import SONGCI_SHA256, DIYCorpusError

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "diy" / "corpora" / "songci.jsonl.xz"
LICENSE_OUT = ROOT / "diy" / "corpora" / "LICENSE.chinese-poetry"

PACKAGE = "chinese-poetry@2.0.1"
TARBALL_SHA256 = "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86"
JSONL_SHA256 = "2dff92f823a897dc7c830d0531599c8d90d62f26c2789f7b03c69367d487589f"

CI_FILE = re.compile(r"package/dist/songci/ci\.song\.(\d+)(\w*)\.json")
LICENSE_MEMBER = "package/LICENSE"
# xz container, CRC64 check, preset 6 (xz's default, 8 MiB dictionary): fixed settings give
# the same bytes on every run, as long as liblzma's encoder does not change.
XZ_SETTINGS = {"format": lzma.FORMAT_XZ, "check": lzma.CHECK_CRC64, "preset": 6}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_pack(folder: Path) -> Path:
    """Download the package's tarball into ``folder`` with ``npm pack``."""
    try:
        # --loglevel=error: npm otherwise lists all 2,248 files of the package
        subprocess.run(["npm", "pack", "--loglevel=error", PACKAGE], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
    except FileNotFoundError:
        raise DIYCorpusError("没有找到 npm，无法下载 chinese-poetry 2.0.1。",
                             "装好 Node.js（带 npm）后再运行；或在别的机器上用 "
                             f"`npm pack {PACKAGE}` 下载，再用 --tarball 指定那个 .tgz 文件。",
                             "npm is not installed; install Node.js, or pass a tarball "
                             "downloaded elsewhere with --tarball.") from None
    except subprocess.CalledProcessError as error:
        raise DIYCorpusError(f"`npm pack {PACKAGE}` 失败（退出码 {error.returncode}）。",
                             "检查网络和 npm 的镜像设置后重试，或用 --tarball 指定已下载的文件。",
                             f"`npm pack {PACKAGE}` failed; check the network, or pass "
                             "--tarball.") from None
    return next(folder.glob("*.tgz"))


def check_tarball(tarball: Path) -> None:
    """The input must be exactly the pinned tarball: another version is another corpus."""
    if not tarball.is_file():
        raise DIYCorpusError(f"找不到文件 {tarball}。", "检查 --tarball 给的路径。",
                             f"{tarball} does not exist.")
    digest = sha256(tarball.read_bytes())
    if digest != TARBALL_SHA256:
        raise DIYCorpusError(
            f"{tarball} 的 sha256 是 {digest}，不是 {PACKAGE} 的 {TARBALL_SHA256}。",
            f"用 `npm pack {PACKAGE}` 重新下载（不要用别的版本），"
            "或者不加 --tarball 让脚本自己下载。",
            f"{tarball} has sha256 {digest}, not {PACKAGE}'s {TARBALL_SHA256}.")


def read_songci(tarball: Path) -> tuple[list[dict], bytes]:
    """Every ci of the tarball's ci.song.*.json files, in order, and the package's LICENSE."""
    files, license_bytes = {}, None
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            match = CI_FILE.fullmatch(member.name)
            if match:
                # "2019y" sorts after every plain number: (suffix, number)
                files[match[2], int(match[1])] = archive.extractfile(member).read()
            elif member.name == LICENSE_MEMBER:
                license_bytes = archive.extractfile(member).read()
    cis = []
    for key in sorted(files):
        for ci in json.loads(files[key]):
            cis.append({"rhythmic": ci["rhythmic"], "author": ci["author"],
                        "paragraphs": ci["paragraphs"]})
    return cis, license_bytes


def jsonl_bytes(cis: list[dict]) -> bytes:
    """One compact JSON object per line, keys in a fixed order, characters as themselves."""
    lines = [json.dumps({"rhythmic": ci["rhythmic"], "author": ci["author"],
                         "paragraphs": list(ci["paragraphs"])},
                        ensure_ascii=False, separators=(",", ":")) + "\n" for ci in cis]
    return "".join(lines).encode("utf-8")


def compress(jsonl: bytes) -> bytes:
    return lzma.compress(jsonl, **XZ_SETTINGS)


def build_songci(tarball: Path) -> tuple[bytes, bytes, bytes]:
    """(jsonl, xz, license) built from ``tarball``; no hash is checked here (tests use a fake)."""
    cis, license_bytes = read_songci(tarball)
    jsonl = jsonl_bytes(cis)
    return jsonl, compress(jsonl), license_bytes


def mismatch(jsonl: bytes, xz: bytes) -> str | None:
    """None if both pinned hashes match, else what differs, said so that one can act on it."""
    if sha256(jsonl) != JSONL_SHA256:
        return (f"内容不同：JSONL 的 sha256 是 {sha256(jsonl)}，应为 {JSONL_SHA256}。"
                "如果你是有意改变语料，先更新本文件的 JSONL_SHA256 和 diy/pretraining/corpus.py 的 "
                "SONGCI_SHA256，再重新运行。(the corpus content differs from the pinned one)")
    if sha256(xz) != SONGCI_SHA256:
        return (f"内容完全相同（JSONL 的 sha256 一致），只有压缩结果不同：.xz 的 sha256 是 "
                f"{sha256(xz)}，应为 {SONGCI_SHA256}。这是另一个版本的 liblzma 压缩器造成的，"
                "语料本身没有变。(the content is identical; only the compressor, i.e. the "
                "liblzma version, produces different .xz bytes)")
    return None


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: never a half-written file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
        handle.write(data)
    os.chmod(handle.name, 0o644)  # a temporary file is private (0600); the corpus is not
    Path(handle.name).replace(path)


def check(xz: bytes, license_bytes: bytes, problem: str | None) -> int:
    """--check: compare the rebuild with the committed files; 0 only if byte for byte equal."""
    ok = True
    for path, built in ((OUT, xz), (LICENSE_OUT, license_bytes)):
        same = path.is_file() and path.read_bytes() == built
        ok = ok and same
        print(f"{path.relative_to(ROOT)}: {'与重建结果逐字节相同' if same else '与重建结果不同'} "
              f"({'identical' if same else 'differs'})")
    if problem:
        print(problem)
    if OUT.is_file():  # is the committed file itself still the pinned one?
        committed = OUT.read_bytes()
        good = (sha256(committed) == SONGCI_SHA256
                and sha256(lzma.decompress(committed)) == JSONL_SHA256)
        print(f"仓库里的 {OUT.name} {'符合' if good else '不符合'}固定的 sha256 "
              f"({'matches' if good else 'does not match'} the pinned hashes)")
    return 0 if ok and not problem else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build_songci",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help=f"{PACKAGE} 的 .tgz（默认用 npm pack 下载）")
    parser.add_argument("--check", action="store_true",
                        help="重建并与仓库里的文件比较，不写任何文件")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as folder:
            tarball = args.tarball or npm_pack(Path(folder))
            check_tarball(tarball)
            jsonl, xz, license_bytes = build_songci(tarball)
    except DIYCorpusError as exc:
        print(f"python -m tools.build_songci: {exc}", file=sys.stderr)
        return 2
    problem = mismatch(jsonl, xz)
    if args.check:
        return check(xz, license_bytes, problem)
    if problem:  # write nothing: the committed corpus stays the one the course was built on
        print(f"{problem}\n没有写入任何文件 (nothing was written).", file=sys.stderr)
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(OUT, xz)
    write_atomically(LICENSE_OUT, license_bytes)
    if sha256(OUT.read_bytes()) != SONGCI_SHA256:  # read back what the course will load
        print(f"写入后的 {OUT} 与固定的 sha256 不符（磁盘出错？）请重新运行。 "
              "(the file on disk does not match after writing)", file=sys.stderr)
        return 1
    print(f"已写入 {OUT.relative_to(ROOT)}（{len(xz):,} 字节，sha256 {SONGCI_SHA256}）"
          f"和 {LICENSE_OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
