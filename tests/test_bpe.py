"""diy.pretraining.bpe (the reference answer of lesson 4.1): byte-level BPE that learns the same
merges as Hugging Face `tokenizers`' BpeTrainer, encodes and decodes exactly."""

import json

import pytest

from diy.pretraining.bpe import ByteBPE, best_pair, count_pairs, gpt2_byte_order, merge, train_bpe
from diy.pretraining.corpus import format_ci, load_songci


def hf_merges(text: str, num_merges: int) -> list[tuple[int, int]]:
    """BpeTrainer's merges on ``text`` (one sequence: no pre-tokenizer split), as byte ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import ByteLevel

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=256 + num_merges, show_progress=False,
                                  initial_alphabet=ByteLevel.alphabet(), min_frequency=2)
    tokenizer.train_from_iterator([text], trainer)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    # BpeTrainer writes merges in GPT-2's printable characters: map them back to bytes
    shown = sorted(ByteLevel.alphabet())  # the printable characters, in the trainer's id order
    byte_of = dict(zip(shown, gpt2_byte_order(), strict=True))
    ids = {bytes([b]): b for b in range(256)}
    out = []
    for left, right in (m if isinstance(m, list) else m.split(" ") for m in merges):
        a, b = (bytes(byte_of[ch] for ch in piece) for piece in (left, right))
        out.append((ids[a], ids[b]))
        ids[a + b] = 255 + len(out)
    return out


def test_count_and_merge_on_a_small_example():
    assert count_pairs([1, 2, 1, 2, 3]) == {(1, 2): 2, (2, 1): 1, (2, 3): 1}
    assert count_pairs([7]) == {}
    assert merge([1, 1, 1], (1, 1), 9) == [9, 1]  # left to right, no overlap
    ids = [1, 2, 3, 1, 2]
    assert merge(ids, (1, 2), 4) == [4, 3, 4] and ids == [1, 2, 3, 1, 2]  # a new list


def test_ties_go_to_the_smallest_pair_in_the_given_byte_order():
    counts = count_pairs([200, 100, 5, 200, 100, 5])  # (200, 100) and (100, 5) both twice
    assert best_pair(counts) == (100, 5)
    order = [200, *[b for b in range(256) if b != 200]]  # byte 200 ranked first
    assert best_pair(counts, order) == (200, 100)


def test_gpt2_byte_order_is_the_trainers_alphabet_order():
    from tokenizers.pre_tokenizers import ByteLevel

    order = gpt2_byte_order()
    assert sorted(order) == list(range(256))
    assert order[:3] == [ord("!"), ord('"'), ord("#")] and len(ByteLevel.alphabet()) == 256


@pytest.mark.parametrize("n_ci, num_merges", [(3, 30), (40, 150)])
def test_same_merges_as_hugging_face_bpe_trainer(n_ci, num_merges):
    text = "".join(format_ci(ci) for ci in load_songci()[:n_ci])
    ours = train_bpe(text, num_merges, byte_order=gpt2_byte_order())
    assert len(ours) == num_merges
    assert ours == hf_merges(text, num_merges)
    # with the bytes in their own order the ties break differently: the rule matters
    assert train_bpe(text, num_merges) != ours


def test_encode_decode_round_trip_and_compression():
    text = "".join(format_ci(ci) for ci in load_songci()[:40])
    tokenizer = ByteBPE(train_bpe(text, 200))
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8")) * 0.6  # the merges pay off on their own text
    unseen = "hello，新词 ☃"
    assert tokenizer.decode(tokenizer.encode(unseen)) == unseen  # bytes: nothing is unknown
    assert tokenizer.decode([0xE4]) == "\ufffd"  # a lone byte of a character


def test_encode_replays_the_merges_learned_on_the_training_text():
    text = "东风夜放花千树，更吹落、星如雨。" * 3
    merges = train_bpe(text, 40)
    ids = list(text.encode("utf-8"))
    for i, pair in enumerate(merges):  # what training did to its own text
        ids = merge(ids, pair, 256 + i)
    assert ByteBPE(merges).encode(text) == ids
