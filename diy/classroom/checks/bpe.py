"""Self-checks of 4.1a (count_pairs, merge: BPE's two moves) and 4.1b (encode, decode with the
learned merges). The learner's functions run on small cases that expose each known mistake
(overlapping pairs, a pair at the end, text outside the training text, a byte that is only part
of a character) and inside a whole BPE training, compared with the course's diy.pretraining.bpe."""

from __future__ import annotations

from collections import Counter

from ...errors import describe_value
from ...pretraining.bpe import ByteBPE, best_pair
from ...pretraining.bpe import count_pairs as reference_count_pairs
from ...pretraining.bpe import merge as reference_merge
from ...pretraining.bpe import train_bpe as reference_train_bpe
from .report import Failed, call_learner, run_check

TEXT = "明月几时有？把酒问青天。不知天上宫阙，今夕是何年。明月明月，几时几时。"


def as_counts(result, name: str) -> dict:
    if result is None:
        raise Failed(f"{name} 返回了 None：忘了 return？", "最后 return 计数（dict 或 Counter）。")
    if isinstance(result, list) and all(isinstance(p, tuple) for p in result):
        raise Failed(f"{name} 返回了相邻对的列表，没有数每一对出现几次。",
                     "用 Counter(zip(ids, ids[1:]))：键是 (左, 右)，值是次数。")
    if not isinstance(result, dict):
        raise Failed(f"{name} 应返回 {{(左 id, 右 id): 次数}} 的 dict（或 Counter），"
                     f"实际是 {describe_value(result)}。", "return Counter(zip(ids, ids[1:]))。")
    bad = [key for key in result if not (isinstance(key, tuple) and len(key) == 2)]
    if bad:
        raise Failed(f"计数的键应是 (左 id, 右 id) 两个数的 tuple，实际有 {bad[0]!r}。",
                     "用 zip(ids, ids[1:]) 生成的 tuple 当键。")
    return {pair: count for pair, count in result.items() if count}


def diagnose_pairs(exc: Exception):
    text = str(exc)
    if isinstance(exc, IndexError):
        return ("下标越界：循环走到了最后一个 id，还去取它后面的 ids[i + 1]。",
                "相邻对只有 len(ids) - 1 个：for i in range(len(ids) - 1)，或直接 zip(ids, ids[1:])。")
    if "unhashable type: 'list'" in text:
        return ("用列表 [a, b] 当了 dict 的键：列表不能当键。", "用 tuple：(ids[i], ids[i + 1])。")
    return None


def check_count_pairs(count_pairs) -> None:
    cases = [[1, 2, 3, 1, 2], [5, 5, 5], [7], [], [256, 9, 256, 9, 256]]
    for ids in cases:
        given = list(ids)
        counts = as_counts(call_learner(count_pairs, given, name="count_pairs",
                                        diagnose=diagnose_pairs), "count_pairs")
        if given != ids:
            raise Failed("count_pairs 改动了传进来的 ids。", "只读 ids，不要 pop / 删除 / 排序它。")
        want = dict(reference_count_pairs(ids))
        if counts == want:
            continue
        by_twos = dict(Counter((ids[i], ids[i + 1]) for i in range(0, len(ids) - 1, 2)))
        if counts == by_twos:
            raise Failed(f"count_pairs({ids}) 得到 {counts}：相邻对是重叠的，每个位置 i 都和 i + 1 组成一对"
                         "（你每数一对就跳过了两个位置；[5, 5, 5] 里 (5, 5) 应数 2 次）。",
                         "每次只往前走一步：zip(ids, ids[1:])。")
        if len(ids) > 1 and counts == dict(Counter(zip(ids, ids[1:] + ids[:1], strict=True))):
            raise Failed("多数了一对 (最后一个, 第一个)：序列首尾不相连。",
                         "只数 zip(ids, ids[1:])，不要把序列当成一个环。")
        raise Failed(f"count_pairs({ids}) 得到 {counts}，应为 {want}。",
                     "每个位置 i（0 ≤ i < len(ids) - 1）数一次 (ids[i], ids[i + 1])。")


def check_merge(merge) -> None:
    cases = [([1, 2, 3, 1, 2], (1, 2), 9), ([5, 5, 5], (5, 5), 9), ([3, 1, 2], (1, 2), 9),
             ([1, 2, 1], (2, 1), 300), ([4, 4], (1, 2), 9), ([], (1, 2), 9)]
    for ids, pair, new_id in cases:
        given = list(ids)
        result = call_learner(merge, given, pair, new_id, name="merge", diagnose=diagnose_pairs)
        if given != ids:
            raise Failed("merge 改动了传进来的 ids（原地替换）：训练时别的地方还要用原来的序列。",
                         "新建一个列表 out，逐个 append，最后 return out。")
        if result is None:
            raise Failed("merge 返回了 None：忘了 return 新列表？", "最后 return out。")
        if not isinstance(result, list):
            raise Failed(f"merge 应返回 list，实际是 {describe_value(result)}。", "return out（一个列表）。")
        want = reference_merge(ids, pair, new_id)
        if result == want:
            continue
        if ids == [5, 5, 5] and result == [9, 9]:
            raise Failed("[5, 5, 5] 合并 (5, 5) 应得 [9, 5]：一对合并之后，它的两个 id 都用掉了，"
                         "第二个 5 不能再和第三个配对。",
                         "合并后下标走两步（i += 2），没合并才走一步。")
        if len(result) == len(want) - 1 and result == want[:-1]:
            raise Failed(f"merge({ids}, {pair}) 丢了最后一个 id：{result}，应为 {want}。",
                         "循环结束时，最后一个没被合并的 id 也要 append 进去（循环条件 i < len(ids)，"
                         "配对时再检查 i + 1 < len(ids)）。")
        raise Failed(f"merge({ids}, {pair}, {new_id}) 得到 {result}，应为 {want}。",
                     "从左到右扫描：当前和下一个正好是 pair 就 append(new_id) 并走两步，否则 append 当前并走一步。")


def learner_train(count_pairs, merge, text: str, num_merges: int):
    """The course's training loop (the notebook's), with the learner's two functions."""
    ids = list(text.encode("utf-8"))
    merges = []
    for new_id in range(256, 256 + num_merges):
        counts = Counter(as_counts(count_pairs(list(ids)), "count_pairs"))
        if not counts:
            break
        pair = best_pair(counts)
        if counts[pair] < 2:
            break
        ids = merge(ids, pair, new_id)
        merges.append(pair)
    return merges


def check_bpe_merge(count_pairs, merge):
    """Check exercise 4.1a; return the count_pairs and merge to use from here on."""

    def body() -> str:
        check_count_pairs(count_pairs)
        check_merge(merge)
        merges = call_learner(learner_train, count_pairs, merge, TEXT, 20, name="训练 BPE")
        want = reference_train_bpe(TEXT, 20)
        if merges != want:
            raise Failed(f"用你的两个函数训练 BPE，得到的合并 {merges[:4]}… 与参考 {want[:4]}… 不同。",
                         "分别用小例子检查 count_pairs 和 merge（例如 [5, 5, 5]）。")
        return (f"count_pairs 与 merge 在重叠、结尾、空序列上都对；用它们训练的 {len(want)} 次合并"
                "与参考实现一致。")

    return run_check("4.1a", body, (count_pairs, merge), (reference_count_pairs, reference_merge))


# ------------------------------------------------------------------------------ 4.1b codec

def diagnose_codec(exc: Exception):
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return ("bytes.decode 遇到了不完整的字符（一个汉字是 3 个字节，模型可能只生成了其中一两个）就报错了。",
                "decode 时写 .decode(\"utf-8\", errors=\"replace\")：不完整的字节显示成 �。")
    if "bytes must be in range" in text:
        return ("bytes([...]) 里出现了 ≥ 256 的 id：合并出来的 id 要先展开成它代表的字节。",
                "先建 vocab = {i: bytes([i]) for i in range(256)}，再按合并的顺序 "
                "vocab[256 + i] = vocab[a] + vocab[b]，decode 时拼 vocab[id]。")
    return None


def check_bpe_codec(encode, decode):
    """Check exercise 4.1b: encode(text, merges) -> ids and decode(ids, merges) -> text; return
    the two functions to use from here on."""
    merges = reference_train_bpe(TEXT * 2, 40)
    reference = ByteBPE(merges)

    def learner_encode(text):
        ids = call_learner(encode, text, list(merges), name="encode", diagnose=diagnose_codec)
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise Failed(f"encode 应返回 id 的列表（int），实际是 {describe_value(ids)}。",
                         "return ids（一个 int 列表）。")
        return ids

    def body() -> str:
        for text in (TEXT, "明月何时有", "hello 世界☃", "青天青天", ""):
            ids = learner_encode(text)
            want = reference.encode(text)
            if ids != want:
                if ids == [ord(ch) for ch in text]:
                    raise Failed("encode 用的是每个字符的 Unicode 编号 ord(ch)，不是 UTF-8 字节。",
                                 "从 list(text.encode(\"utf-8\")) 开始：一个汉字是 3 个字节。")
                if ids == list(text.encode("utf-8")):
                    raise Failed(f"encode({text!r}) 只得到了字节，一次合并都没做。",
                                 "按学到的顺序依次做合并：for i, pair in enumerate(merges): "
                                 "ids = merge(ids, pair, 256 + i)。")
                backwards = list(text.encode("utf-8"))
                for i in reversed(range(len(merges))):
                    backwards = reference_merge(backwards, merges[i], 256 + i)
                if ids == backwards:
                    raise Failed("合并的顺序反了：后学到的合并要用到先学到的合并的结果，必须按学到的顺序做。",
                                 "for i, pair in enumerate(merges)：从第 0 个合并开始。")
                raise Failed(f"encode({text!r}) 得到 {ids[:8]}…，应为 {want[:8]}…。",
                             "从 UTF-8 字节开始，按学到的顺序依次合并（id 256 + i 是第 i 个合并）。")
            back = call_learner(decode, list(ids), list(merges), name="decode",
                                diagnose=diagnose_codec)
            if back != text:
                if isinstance(back, (bytes, bytearray)):
                    raise Failed("decode 返回的是 bytes，不是 str。", "最后 .decode(\"utf-8\", errors=\"replace\")。")
                raise Failed(f"decode(encode({text!r})) 得到 {back!r}，没有还原原文。",
                             "按合并的顺序建 vocab（id → 字节串），拼起来再按 UTF-8 解码。")
        partial = call_learner(decode, [list("天".encode())[0]], list(merges),
                               name="decode", diagnose=diagnose_codec)
        if partial != "\ufffd":
            raise Failed(f"只 decode 一个汉字的第一个字节，应得到替换字符 �，实际 {partial!r}。",
                         ".decode(\"utf-8\", errors=\"replace\")。")
        return (f"encode 与参考一致（{len(merges)} 次合并，含训练文本外的字、英文和 ☃），"
                "decode 还原原文；只解码半个汉字（它的第一个字节）得到 �。")

    return run_check("4.1b", body, (encode, decode),
                     (lambda text, merges: ByteBPE(merges).encode(text),
                      lambda ids, merges: ByteBPE(merges).decode(ids)))
