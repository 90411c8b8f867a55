import math

import pytest
import torch
import torch.nn.functional as F

from diy import DIYConfig, DIYModel, causal_lm_loss


def test_module_names_follow_hugging_face_llama(model):
    names = set(model.state_dict())
    for expected in ["embed_tokens.weight", "norm.weight",
                     "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.k_proj.weight",
                     "layers.0.self_attn.v_proj.weight", "layers.0.self_attn.o_proj.weight",
                     "layers.1.mlp.gate_proj.weight", "layers.1.mlp.up_proj.weight",
                     "layers.1.mlp.down_proj.weight", "layers.1.input_layernorm.weight",
                     "layers.1.post_attention_layernorm.weight"]:
        assert expected in names
    assert not any("rotary" in n or n.endswith("bias") for n in names)


def test_parameter_count(model):
    # embedding 6400*256 + 2 layers * (4*256*256 + 3*256*704 + 2*256) + final norm 256
    assert model.num_parameters() == 6400 * 256 + 2 * (4 * 256 * 256 + 3 * 256 * 704 + 512) + 256


def test_weights_initialised_small(model):
    std = model.layers[0].self_attn.q_proj.weight.std().item()
    assert abs(std - 0.02) < 0.002
    assert abs(model.embed_tokens.weight.std().item() - 0.02) < 0.002
    assert torch.equal(model.norm.weight, torch.ones(256))


def test_training_path_shape_and_dtype(model, input_ids):
    hidden = model(input_ids, is_training=True)
    assert isinstance(hidden, torch.Tensor)
    assert hidden.shape == (2, 10, 256) and hidden.dtype == torch.float32
    assert torch.isfinite(hidden).all()


def test_inference_path_returns_cache_only_when_asked(model, input_ids):
    hidden = model(input_ids, is_training=False)
    assert hidden.shape == (2, 10, 256)
    hidden2, presents = model(input_ids, is_training=False, use_cache=True)
    assert torch.allclose(hidden, hidden2, atol=1e-6)
    assert len(presents) == 2
    for k, v in presents:
        assert k.shape == v.shape == (2, 4, 10, 64)


def test_int32_ids_accepted(model, input_ids):
    assert torch.allclose(model(input_ids.int()), model(input_ids))


def test_causality(model, input_ids):
    base = model(input_ids)
    for t in [1, 4, 9]:
        changed = input_ids.clone()
        changed[:, t] = (changed[:, t] + 7) % model.config.vocab_size
        out = model(changed)
        assert torch.allclose(out[:, :t], base[:, :t], atol=1e-6), f"position < {t} changed"
        assert not torch.allclose(out[:, t], base[:, t]), "the changed position must change"


def test_right_padding_does_not_change_real_positions(model, input_ids):
    base = model(input_ids)  # (2, 10)
    padded = torch.cat([input_ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)  # (2, 15)
    out = model(padded)
    assert torch.allclose(out[:, :10], base, atol=1e-5)
    out_len = model(padded, seq_lengths=torch.tensor([10, 10]))
    assert torch.allclose(out_len[:, :10], base, atol=1e-5)


def test_seq_lengths_rows_equal_unpadded_rows(model):
    torch.manual_seed(3)
    lengths = [10, 6, 3]
    rows = [torch.randint(1, 6400, (n,)) for n in lengths]
    batch = torch.zeros(3, 10, dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, :len(r)] = r
    # padding holds other token values too: they must not matter
    noisy = batch.clone()
    noisy[1, 6:] = 17
    noisy[2, 3:] = 4242
    out = model(batch, seq_lengths=torch.tensor(lengths))
    out_noisy = model(noisy, seq_lengths=lengths)
    for i, r in enumerate(rows):
        alone = model(r[None])  # (1, n, C)
        assert torch.allclose(out[i, :len(r)], alone[0], atol=1e-5)
        assert torch.allclose(out_noisy[i, :len(r)], alone[0], atol=1e-5)


def test_padded_queries_only_see_real_keys(model):
    torch.manual_seed(4)
    ids = torch.randint(1, 6400, (1, 8))
    with_len = model(ids, seq_lengths=[5])
    # With seq_lengths, a padded position attends only to the 5 real keys, so changing the
    # token at real position 4 changes it, while changing padded position 6 leaves position 7
    # unaffected (it cannot see position 6).
    other = ids.clone()
    other[0, 6] = 99
    assert torch.allclose(model(other, seq_lengths=[5])[0, 7], with_len[0, 7], atol=1e-6)
    assert not torch.allclose(model(other)[0, 7], model(ids)[0, 7], atol=1e-6)


@pytest.mark.parametrize("split", [1, 4, 9])
def test_kv_cache_matches_full_forward(model, split):
    torch.manual_seed(5)
    ids = torch.randint(0, 6400, (3, 12))
    full = model(ids, is_training=False)
    hidden, cache = model(ids[:, :split], is_training=False, use_cache=True)
    outs = [hidden]
    for t in range(split, 12):
        hidden, cache = model(ids[:, t:t + 1], past_key_values=cache, use_cache=True,
                              is_training=False)
        outs.append(hidden)
        assert cache[0][0].shape == (3, 4, t + 1, 64)
    stitched = torch.cat(outs, dim=1)
    assert (stitched - full).abs().max().item() < 1e-5


def test_kv_cache_multi_token_chunks(model):
    torch.manual_seed(6)
    ids = torch.randint(0, 6400, (2, 12))
    full = model(ids, is_training=False)
    h1, cache = model(ids[:, :5], is_training=False, use_cache=True)
    h2, cache = model(ids[:, 5:9], past_key_values=cache, is_training=False, use_cache=True)
    h3 = model(ids[:, 9:], past_key_values=cache, is_training=False)
    assert (torch.cat([h1, h2, h3], 1) - full).abs().max().item() < 1e-5


def test_cache_positions_continue_from_cache_length(model):
    # Without the offset, token 5 decoded after a cache of 5 would get position 0 (RoPE),
    # and differ from the full forward. Compare against the wrong answer to be sure.
    ids = torch.randint(0, 6400, (1, 6), generator=torch.Generator().manual_seed(7))
    full = model(ids, is_training=False)
    _, cache = model(ids[:, :5], is_training=False, use_cache=True)
    step = model(ids[:, 5:], past_key_values=cache, is_training=False)
    assert torch.allclose(step[0, 0], full[0, 5], atol=1e-5)


def test_dropout_follows_train_and_eval(input_ids):
    torch.manual_seed(0)
    m = DIYModel(DIYConfig(dropout=0.1))
    m.eval()
    assert torch.equal(m(input_ids), m(input_ids))
    m.train()
    assert not torch.allclose(m(input_ids), m(input_ids))
    # is_training does not switch dropout: eval mode stays deterministic on the training path
    m.eval()
    assert torch.equal(m(input_ids, is_training=True), m(input_ids, is_training=False))


def test_no_dropout_config_is_deterministic_in_train_mode(input_ids):
    m = DIYModel(DIYConfig(dropout=0.0)).train()
    assert torch.equal(m(input_ids), m(input_ids))


def test_every_parameter_gets_a_gradient(input_ids):
    torch.manual_seed(0)
    m = DIYModel().train()
    head = torch.nn.Linear(256, 6400, bias=False)
    loss = causal_lm_loss(head(m(input_ids)), input_ids)
    loss.backward()
    for name, p in list(m.named_parameters()) + [("lm_head.weight", head.weight)]:
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_random_head_loss_is_close_to_ln_vocab():
    torch.manual_seed(0)
    m = DIYModel().eval()
    head = torch.nn.Linear(256, 6400, bias=False)
    ids = torch.randint(0, 6400, (8, 64))
    with torch.no_grad():
        logits = head(m(ids))
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, 6400), ids[:, 1:].reshape(-1)).item()
    assert abs(loss - math.log(6400)) < 0.3, loss
    assert loss > math.log(6400)  # logits have spread, never below the uniform guess on average


def test_small_config_runs():
    m = DIYModel(50, 1, 16, 2, 8, 0.0)
    assert m(torch.randint(0, 50, (3, 8))).shape == (3, 8, 16)
