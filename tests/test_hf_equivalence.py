"""DIYModel computes what transformers' LlamaModel computes, weight for weight."""

import pytest
import torch

from diy import DIYConfig, DIYForCausalLM, DIYModel
from diy.hf import to_llama_for_causal_lm, to_llama_model

pytest.importorskip("transformers")


def randomise_norms(model):
    # RMSNorm weights start at 1; make them random so a mistake in the norm cannot hide.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def pair():
    torch.manual_seed(0)
    diy_model = randomise_norms(DIYModel(DIYConfig()).eval())
    return diy_model, to_llama_model(diy_model).eval()


def test_import_diy_does_not_import_transformers():
    import subprocess
    import sys
    code = "import sys, diy; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hidden_states_equal(pair):
    diy_model, hf = pair
    ids = torch.randint(0, 6400, (4, 128), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = diy_model(ids)
        theirs = hf(input_ids=ids).last_hidden_state
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_hidden_states_equal_with_right_padding(pair):
    diy_model, hf = pair
    ids = torch.randint(1, 6400, (3, 16), generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([16, 11, 4])
    mask = (torch.arange(16)[None] < lengths[:, None]).long()
    ids = ids * mask
    with torch.no_grad():
        ours = diy_model(ids, seq_lengths=lengths)
        theirs = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    for i, n in enumerate(lengths.tolist()):
        assert (ours[i, :n] - theirs[i, :n]).abs().max().item() <= 1e-5


def test_cached_decoding_equal(pair):
    from transformers import DynamicCache

    diy_model, hf = pair
    ids = torch.randint(0, 6400, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, cache = diy_model(ids[:, :12], is_training=False, use_cache=True)
        out = hf(input_ids=ids[:, :12], use_cache=True, cache=DynamicCache())
        theirs, hf_cache = out.last_hidden_state, out.cache
        assert (ours - theirs).abs().max().item() <= 1e-5
        for t in range(12, 20):
            ours, cache = diy_model(ids[:, t:t + 1], past_key_values=cache, use_cache=True,
                                    is_training=False)
            out = hf(input_ids=ids[:, t:t + 1], cache=hf_cache, use_cache=True)
            theirs, hf_cache = out.last_hidden_state, out.cache
            assert (ours - theirs).abs().max().item() <= 1e-5
    # the caches hold the same (rotated) keys and values
    assert torch.allclose(cache[1][0], hf_cache.layers[1].keys, atol=1e-5)
    assert torch.allclose(cache[1][1], hf_cache.layers[1].values, atol=1e-5)


def test_causal_lm_logits_and_loss_equal():
    torch.manual_seed(0)
    ours = DIYForCausalLM().eval()
    theirs = to_llama_for_causal_lm(ours).eval()
    ids = torch.randint(0, 6400, (2, 10), generator=torch.Generator().manual_seed(4))
    from diy import causal_lm_loss
    with torch.no_grad():
        logits = ours(ids)
        out = theirs(input_ids=ids, labels=ids)
    assert (logits - out.logits).abs().max().item() <= 1e-5
    assert abs(causal_lm_loss(logits, ids).item() - out.loss.item()) <= 1e-5


def test_gradients_equal():
    torch.manual_seed(0)
    ours = DIYForCausalLM(DIYConfig(dropout=0.0))
    theirs = to_llama_for_causal_lm(ours)
    ids = torch.randint(0, 6400, (2, 10), generator=torch.Generator().manual_seed(5))
    from diy import causal_lm_loss
    causal_lm_loss(ours(ids), ids).backward()
    theirs(input_ids=ids, labels=ids).loss.backward()
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, grads[name].grad, atol=1e-6, rtol=1e-4), name
