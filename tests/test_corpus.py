"""The 宋词 corpus: the shipped file is the pinned one (a damaged or missing copy is refused before
parsing), its counts, the text format, the held-out split (deterministic, disjoint, never trained
on), and the build script's writer (deterministic bytes, the JSONL layout) on a tiny fake tarball.

The real rebuild needs the 85 MB npm tarball, so it is a manual command:
``python -m tools.build_songci --check``.
"""

import hashlib
import io
import json
import lzma
import tarfile

import pytest

from diy.errors import DIYError, DIYInputError
from diy.pretraining.corpus import (
    SONGCI_FILE,
    SONGCI_SHA256,
    Ci,
    DIYCorpusError,
    format_ci,
    is_held_out,
    load_songci,
    split_songci,
)
from tools import build_songci


@pytest.fixture(scope="module")
def cis():
    return load_songci()


@pytest.fixture(scope="module")
def split(cis):
    return split_songci(cis)


def test_the_shipped_file_is_the_pinned_one():
    data = SONGCI_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SONGCI_SHA256
    # the content hash too, so the build script's pins and the shipped file agree
    assert hashlib.sha256(lzma.decompress(data)).hexdigest() == build_songci.JSONL_SHA256


def test_a_corrupted_copy_is_refused_and_named(tmp_path):
    data = bytearray(SONGCI_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "songci.jsonl.xz"
    bad.write_bytes(bytes(data))
    with pytest.raises(DIYCorpusError) as caught:
        load_songci(bad)
    assert isinstance(caught.value, DIYError)
    assert str(bad) in caught.value.problem and "sha256" in caught.value.problem
    assert "git checkout -- diy/corpora/songci.jsonl.xz" in caught.value.fix
    assert "tools.build_songci" in caught.value.fix


def test_a_truncated_copy_is_refused_before_parsing(tmp_path):
    bad = tmp_path / "songci.jsonl.xz"
    bad.write_bytes(SONGCI_FILE.read_bytes()[:1000])  # would fail inside lzma if parsed first
    with pytest.raises(DIYCorpusError, match="sha256"):
        load_songci(bad)


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "songci.jsonl.xz"
    with pytest.raises(DIYCorpusError) as caught:
        load_songci(missing)
    assert str(missing) in caught.value.problem
    assert "git checkout" in caught.value.fix


def test_an_intact_copy_elsewhere_loads(tmp_path, cis):
    copy = tmp_path / "copy.jsonl.xz"
    copy.write_bytes(SONGCI_FILE.read_bytes())
    assert load_songci(copy) == cis


def test_counts(cis):
    assert len(cis) == 21_053
    text = [line for ci in cis for line in ci.paragraphs]
    assert sum(len(line) for line in text) == 1_707_617
    assert len(set("".join(text))) == 6_084
    assert all(isinstance(ci, Ci) and isinstance(ci.paragraphs, tuple) for ci in cis)
    first = cis[0]  # the source's first ci
    assert (first.rhythmic, first.author) == ("导引", "和岘")
    assert first.paragraphs[0] == "气和玉烛，睿化著鸿明。"


def test_repeated_loads_are_cached_and_independent(cis):
    again = load_songci()
    assert again == cis and again is not cis and again[0] is cis[0]
    again.reverse()  # a caller reordering its list does not change the next caller's
    assert load_songci()[0] is cis[0]


def test_format_ci():
    ci = Ci("如梦令", "李清照", ("昨夜雨疏风骤。", "浓睡不消残酒。"))
    assert format_ci(ci) == "如梦令\n昨夜雨疏风骤。\n浓睡不消残酒。\n\n"


def test_split_is_deterministic_disjoint_and_in_order(cis, split):
    train, held_out = split
    assert split_songci(cis) == split and split_songci() == split
    assert len(train) + len(held_out) == len(cis)
    assert {id(ci) for ci in train}.isdisjoint(id(ci) for ci in held_out)
    position = {id(ci): i for i, ci in enumerate(cis)}
    for part in split:
        indices = [position[id(ci)] for ci in part]
        assert indices == sorted(indices)


def test_held_out_ci_are_never_trained_on(split):
    """No held-out body (the lines of a ci) occurs as a body in the training split, although the
    corpus does hold the same body under two authors or two 词牌 names a few times."""
    train, held_out = split
    body = "\n".join
    trained = {body(ci.paragraphs) for ci in train}
    assert not any(body(ci.paragraphs) in trained for ci in held_out)
    same_body_other_title = Ci("另一个词牌", "另一位作者", held_out[0].paragraphs)
    assert is_held_out(same_body_other_title)


def test_held_out_share_is_near_five_percent(cis, split):
    share = len(split[1]) / len(cis)
    assert 0.04 < share < 0.06
    _, ten = split_songci(cis, percent=10)
    assert 0.09 < len(ten) / len(cis) < 0.11 and set(map(id, split[1])) <= set(map(id, ten))
    assert split_songci(cis, percent=0)[1] == [] and split_songci(cis, percent=100)[0] == []


@pytest.mark.parametrize("percent", [0.05, -1, 101, "5", True])
def test_a_bad_percent_is_refused(percent):
    with pytest.raises(DIYInputError, match="percent"):
        split_songci([], percent=percent)


# ---- the build script, on a fake tarball (the real one is 85 MB and needs the network) ----

FAKE = {
    "ci.song.1000.json": [{"author": "乙", "paragraphs": ["三行。"], "rhythmic": "调二",
                           "prologue": "词序不保留"}],
    "ci.song.0.json": [{"author": "甲", "paragraphs": ["一行，", "二行。"], "rhythmic": "调一",
                        "tags": ["不保留"]},
                       {"author": "丙", "paragraphs": ["（缺词文）"], "rhythmic": "调三"}],
    "ci.song.2019y.json": [{"author": "丁", "paragraphs": ["夢魂尋遍。"], "rhythmic": "清平乐"}],
}


def fake_tarball(path):
    with tarfile.open(path, "w:gz") as archive:
        members = {f"package/dist/songci/{name}": json.dumps(cis, ensure_ascii=False, indent=2)
                   for name, cis in FAKE.items()}
        members["package/dist/songci/author.song.json"] = "[]"  # not a ci file: ignored
        members["package/LICENSE"] = "The MIT License (MIT)\n"
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_the_writer_is_deterministic_and_lays_out_one_ci_per_line(tmp_path):
    tarball = fake_tarball(tmp_path / "fake.tgz")
    jsonl, xz, license_bytes = build_songci.build_songci(tarball)
    assert build_songci.build_songci(tarball) == (jsonl, xz, license_bytes)  # same bytes twice
    assert lzma.decompress(xz) == jsonl and license_bytes == b"The MIT License (MIT)\n"
    assert jsonl.decode("utf-8").splitlines() == [  # numeric order of N, then 2019y
        '{"rhythmic":"调一","author":"甲","paragraphs":["一行，","二行。"]}',
        '{"rhythmic":"调三","author":"丙","paragraphs":["（缺词文）"]}',
        '{"rhythmic":"调二","author":"乙","paragraphs":["三行。"]}',
        '{"rhythmic":"清平乐","author":"丁","paragraphs":["夢魂尋遍。"]}',
    ]
    assert jsonl.endswith(b"\n")
    # the xz settings are stated, not left to defaults: format, integrity check, preset
    assert xz == lzma.compress(jsonl, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)


def test_the_writer_reproduces_the_shipped_content(cis):
    """The shipped JSONL is exactly what the writer makes from the ci it holds."""
    records = [{"rhythmic": ci.rhythmic, "author": ci.author, "paragraphs": ci.paragraphs}
               for ci in cis]
    jsonl = build_songci.jsonl_bytes(records)
    assert hashlib.sha256(jsonl).hexdigest() == build_songci.JSONL_SHA256


def test_a_wrong_tarball_is_refused_with_its_hash(tmp_path):
    tarball = fake_tarball(tmp_path / "fake.tgz")
    with pytest.raises(DIYCorpusError, match=build_songci.TARBALL_SHA256):
        build_songci.check_tarball(tarball)


def test_mismatch_says_whether_the_content_or_only_the_compressor_differs(cis):
    assert build_songci.mismatch(b"other content", b"").startswith("内容不同")
    records = [{"rhythmic": ci.rhythmic, "author": ci.author, "paragraphs": ci.paragraphs}
               for ci in cis]
    message = build_songci.mismatch(build_songci.jsonl_bytes(records), b"other bytes")
    assert "内容完全相同" in message and "liblzma" in message
