"""Lesson 1.1: add lm_head, from hidden_states to logits."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：理解语言模型的「最后一层」——把每个位置的 `hidden_states` 向量映射成词表里每个 token 的分数（logits）。

    **学完后你能自测**：
    - [ ] `hidden_states.shape` 是 `(2, 10, 256)`，`logits.shape` 是 `(2, 10, 6400)`；
    - [ ] 说得出 `logits[b, t]` 这个长度为 6400 的向量是什么意思；
    - [ ] 知道 `lm_head` 占了模型多少参数，以及为什么小模型常把它和 embedding 共享。

    **怎么做练习**：带 ✏️ 的单元格是你要自己敲的代码。写完运行它，再运行紧接着的**自检**单元格：
    它会打印 ✅（通过）、⏳（还没写）或 ❌（哪里错了、怎么改）。还没写完也可以一路运行到底——
    自检会让后面的单元格先用参考答案继续。
    """),
    md("""
    ## 0. 准备：导入与超参数

    `diy` 是课程的共享包，骨干网络 `DIYModel` 就在里面（embedding → transformer blocks → final norm）。

    **用你自己的 `DIYModel.py`**（0.4 导出的，或你早就有的）：要在**启动 JupyterLab 之前**告诉课程它在哪里。关掉 JupyterLab，
    在仓库根目录运行 `make lab BACKBONE=notebooks/DIYModel.py`（类名不是 `DIYModel` 时写 `文件:类名`）：它先用课程的短文逐项检查
    你的文件（和 `.venv/bin/python -m diy.classroom.doctor --backbone notebooks/DIYModel.py` 一样，有 ❌ 就停下），再设好
    `DIY_BACKBONE` 打开这一课（没有 make：先把环境变量 `DIY_BACKBONE` 设成文件的完整路径，再启动 JupyterLab）。
    在已经打开的 notebook 里改环境变量没有用：kernel 启动时就读好了。下面打印的一行说明此刻用的是哪一个骨干；
    你的文件不符合约定时，这一格就会说是哪一项、怎么改。

    第一～三步对骨干的全部要求：
    - `DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)`：六个**按位置**传的参数，就是这个顺序；
    - `forward(input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)` 返回 `(B, L, hidden_size)`
      的 float32 `hidden_states`；`is_training=False, use_cache=True` 时返回 `(hidden_states, presents)`，`presents` 是每层一个
      `(k, v)`，各 `(B, num_heads, 长度, head_dim)`，能原样作为 `past_key_values` 传回；
    - **dropout 和 `is_training`**：`is_training` 选计算路径（整段一次算，还是推理、可以带缓存）；dropout 必须在 `model.eval()`
      之后关掉。课程的参考骨干让 dropout 只看 `model.train()` / `model.eval()`（`nn.Dropout`，或 `training=self.training`），
      这是 PyTorch 的惯例，也是 0.3、0.4 教的写法。学习计划里的 `F.dropout(x, p, training=is_training)` 也能用：课程调用骨干时，
      `is_training` 总是和模式一致——`train()` 时 `True`，`eval()` 时（包括带缓存的推理）`False`（1.3 的最后演示课程的
      `DIYForCausalLM` 怎样做到这一点）。你自己调用骨干时也守这个规矩：训练 `model.train()` + `is_training=True`，
      评估和生成 `model.eval()` + `is_training=False`。

    固定随机种子，这样你每次运行看到的数字都一样。
    """),
    code("""
    import matplotlib.pyplot as plt
    import torch
    from torch import nn

    from diy.backbone import backbone_class, describe
    from diy.classroom.checks import check_lm_head
    from diy.plotting import zh_or_en  # 图中文字：有中文字体用中文，没有就用英文

    DIYModel = backbone_class()  # 课程的 diy.DIYModel；设了 DIY_BACKBONE 时是你自己的 DIYModel.py
    torch.manual_seed(0)
    print("torch", torch.__version__.split("+")[0])  # 不打印 +cpu / +cu130 这样的构建后缀：课程在哪个构建上结果都一样
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    md("""
    这些超参数和 `DIYModel` 的构造参数一一对应，后面封装 `DIYForCausalLM` 时也用同一组。
    """),
    code("""
    vocab_size = 6400   # 词表大小：token id 的取值范围是 [0, 6400)
    hidden_size = 256   # 每个位置的隐藏向量维度
    num_layers = 2      # transformer block 的个数
    num_heads = 4       # 注意力头数，每个头 256 // 4 = 64 维
    max_seq_len = 128   # 最长序列
    dropout = 0.1       # 训练时的 dropout 概率

    batch_size, seq_len = 2, 10   # 假数据的大小
    print(f"vocab_size={vocab_size}, hidden_size={hidden_size}, num_layers={num_layers}, "
          f"num_heads={num_heads}, max_seq_len={max_seq_len}, dropout={dropout}")
    """),
    md("""
    ## 1. 实例化骨干网络 DIYModel

    打印模型可以看到它的结构：`embed_tokens`、两层 `layers`（每层有 `self_attn` 和 `mlp`）、最后的 `norm`。
    它的输出是 `hidden_states`，还**不是**对下一个 token 的预测。
    """),
    code("""
    model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    print(model)
    print(f"骨干网络参数量: {sum(p.numel() for p in model.parameters()):,}")
    """),
    md("""
    ## 2. 造一小份假数据

    `input_ids` 是一批 token id，形状 `(batch_size, seq_len)`，dtype 是整数 `torch.int64`。
    """),
    code("""
    input_ids = torch.randint(0, vocab_size, (batch_size, seq_len))  # (B, L)
    print("input_ids.shape:", tuple(input_ids.shape), input_ids.dtype)
    print(input_ids)
    """),
    md("""
    ## 3. 骨干网络前向：得到 hidden_states

    `is_training=True` 走训练路径：一次处理整条序列，返回一个张量。新建的模型默认是 train 模式，正好和 `is_training=True` 一致
    （课程的骨干里 dropout 由 `model.train()` / `model.eval()` 控制，`is_training` 只选路径）。
    """),
    code("""
    hidden_states = model(input_ids, is_training=True)  # (B, L, hidden_size)
    print("hidden_states.shape:", tuple(hidden_states.shape))
    """),
    md("""
    ## 4. ✏️ 练习 1.1：加上 lm_head

    `hidden_states` 的最后一维是 `hidden_size=256`，我们要的是词表上每个 token 的分数，最后一维应是 `vocab_size=6400`。
    这正是一个线性层做的事：

    | 张量 | 形状 |
    | --- | --- |
    | `hidden_states` | `(B, L, hidden_size)` |
    | `lm_head.weight` | `(vocab_size, hidden_size)` |
    | `logits = lm_head(hidden_states)` | `(B, L, vocab_size)` |

    补全下面两个函数（删掉 `raise NotImplementedError` 那一行）：
    1. `build_lm_head(hidden_size, vocab_size)`：返回 `nn.Linear`，输入维度 `hidden_size`，输出维度 `vocab_size`，
       **不要 bias**（和常见 LLM 一致）；
    2. `forward_to_logits(model, lm_head, input_ids)`：走训练路径得到 `hidden_states`，再过 `lm_head` 得到 `logits`，
       返回 `(hidden_states, logits)`。

    用参数，不要写死 256、6400——自检会换一组尺寸再试一遍。
    """),
    exercise(
        solution="""
        # ✏️ 练习 1.1
        def build_lm_head(hidden_size, vocab_size):
            \"\"\"返回把 hidden_size 维映射到 vocab_size 维的线性层（不带 bias）。\"\"\"
            return nn.Linear(hidden_size, vocab_size, bias=False)


        def forward_to_logits(model, lm_head, input_ids):
            \"\"\"训练路径前向，返回 (hidden_states, logits)。\"\"\"
            hidden_states = model(input_ids, is_training=True)  # (B, L, hidden_size)
            logits = lm_head(hidden_states)  # (B, L, vocab_size)
            return hidden_states, logits
        """,
        stub="""
        # ✏️ 练习 1.1
        def build_lm_head(hidden_size, vocab_size):
            \"\"\"返回把 hidden_size 维映射到 vocab_size 维的线性层（不带 bias）。\"\"\"
            raise NotImplementedError("✏️ 在这里构造 lm_head")


        def forward_to_logits(model, lm_head, input_ids):
            \"\"\"训练路径前向，返回 (hidden_states, logits)。\"\"\"
            raise NotImplementedError("✏️ 在这里先过骨干网络，再过 lm_head")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    build_lm_head, forward_to_logits = check_lm_head(build_lm_head, forward_to_logits)
    """),
    md("""
    ## 5. 检查形状

    用你的函数（或者还没写完时的参考答案）构造 `lm_head`，在假数据上前向。
    """),
    code("""
    lm_head = build_lm_head(hidden_size, vocab_size)
    hidden_states, logits = forward_to_logits(model, lm_head, input_ids)
    print("lm_head:", lm_head)
    print("hidden_states.shape:", tuple(hidden_states.shape))  # (2, 10, 256)
    print("logits.shape:       ", tuple(logits.shape))         # (2, 10, 6400)
    print("形状符合预期:", tuple(hidden_states.shape) == (2, 10, 256)
          and tuple(logits.shape) == (2, 10, 6400))
    """),
    md("""
    ## 6. 一个位置的 logits 是什么意思？

    `logits[b, t]` 是一个长度 6400 的向量：第 `i` 个数是「第 `b` 条序列在位置 `t` 之后，下一个 token 是 id `i`」的分数。
    分数越大越可能；做一次 softmax 就变成概率分布（和为 1）。
    """),
    code("""
    position_logits = logits[0, 3].detach()          # (vocab_size,)
    probs = torch.softmax(position_logits, dim=-1)   # (vocab_size,)，和为 1
    print("position_logits.shape:", tuple(position_logits.shape))
    print(f"概率之和: {probs.sum().item():.4f}")
    print(f"最大概率: {probs.max().item():.6f}   均匀分布 1/vocab_size: {1 / vocab_size:.6f}")
    top = torch.topk(probs, k=5)
    for rank, (p, token_id) in enumerate(zip(top.values, top.indices, strict=True), start=1):
        print(f"  top-{rank}: token id {token_id.item():4d}  p = {p.item():.6f}")
    """),
    md("""
    画出这一个位置对全部 6400 个 token 的概率：随机初始化的模型还什么都没学到，概率都在均匀分布 1/6400（红线）
    附近随机起伏，最大的也只有千分之一左右，没有哪个 token 明显胜出。训练（第二步）会把正确的下一个 token 的概率推高。

    （图里的文字由 `zh_or_en(中文, English)` 决定：电脑上装了中文字体就显示中文，没有就显示英文，
    免得中文变成一个个方框。怎么装中文字体见 README 的「常见问题」。）
    """),
    code("""
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(probs.numpy(), linewidth=0.5, label="softmax(logits[0, 3])")
    ax.axhline(1 / vocab_size, color="red", linestyle="--",
               label=zh_or_en("均匀分布 1/6400", "uniform 1/6400"))
    ax.set_xlabel("token id")
    ax.set_ylabel(zh_or_en("p(下一个 token)", "p(next token)"))
    ax.set_title(zh_or_en("随机模型在一个位置上的下一个 token 分布",
                       "Next-token distribution of a random model at one position"))
    ax.legend(loc="upper right")
    plt.show()
    """),
    md("""
    ## 7. lm_head 有多大？

    `lm_head.weight` 的形状是 `(vocab_size, hidden_size)`，和 `embed_tokens.weight` 一模一样。
    在这个小模型里它占了大约三分之一的参数。所以很多小模型会让两者**共享同一份权重**（weight tying），
    省下这部分参数。这里先不做，了解即可。
    """),
    code("""
    backbone_params = sum(p.numel() for p in model.parameters())
    head_params = lm_head.weight.numel()
    total = backbone_params + head_params
    # 骨干里 (vocab_size, hidden_size) 的那个 nn.Embedding（课程的骨干里叫 embed_tokens）
    name, embedding = next((n, m) for n, m in model.named_modules()
                           if isinstance(m, nn.Embedding) and m.num_embeddings == vocab_size)
    print(f"{name}.weight:", tuple(embedding.weight.shape))
    print("lm_head.weight:     ", tuple(lm_head.weight.shape))
    print(f"骨干 {backbone_params:,} + lm_head {head_params:,} = {total:,}")
    print(f"lm_head 占全部参数的 {head_params / total:.1%}")
    """),
    md("""
    ## 先猜一猜，再运行

    1. 如果 `lm_head` 带 bias，参数会多多少个？
    2. 把 `hidden_size` 换成 512（骨干和 `lm_head` 一起换），`logits` 的形状是什么？
    3. 随机模型在一个位置上，概率最大的 token 大约是均匀分布 1/6400 的几倍？

    想好了再运行下一格。
    """),
    code("""
    with_bias = nn.Linear(hidden_size, vocab_size)
    print("1. bias 多出的参数:", sum(p.numel() for p in with_bias.parameters()) - head_params)
    wide_model = DIYModel(vocab_size, num_layers, 512, num_heads, max_seq_len, dropout)
    wide_head = build_lm_head(512, vocab_size)
    print("2. hidden_size=512 时 logits.shape:", tuple(forward_to_logits(wide_model, wide_head, input_ids)[1].shape))
    print(f"3. 最大概率 / (1/6400) ≈ {probs.max().item() * vocab_size:.1f} 倍")
    """),
    md("""
    ## 常见错误

    | 症状 | 原因 | 修复 |
    | --- | --- | --- |
    | 自检说带了 bias | `nn.Linear` 默认 `bias=True` | `nn.Linear(hidden_size, vocab_size, bias=False)` |
    | `mat1 and mat2 shapes cannot be multiplied` | 两个维度写反了 | 第一个参数是输入维度 `hidden_size` |
    | 换一组尺寸就出错 | 写死了 256 / 6400 | 用函数参数 |
    | logits 最后一维是 256 | 把 `hidden_states` 当成了 logits | 再过一次 `lm_head` |
    | `mat1 and mat2 must have the same dtype` | 把 `input_ids`（整数）直接交给了 `lm_head` | 先过骨干网络得到 `hidden_states` |
    | 每行加起来是 1 | 在 forward 里做了 softmax | 返回原始的 logits，softmax 交给 loss 或采样 |

    ## 小结

    你现在能：
    - 用 `nn.Linear(hidden_size, vocab_size, bias=False)` 把 `hidden_states (B, L, 256)` 变成 `logits (B, L, 6400)`；
    - 解释一个位置的 logits 向量：下一个 token 在整个词表上的分数，softmax 后是概率；
    - 说出随机模型为什么给出近似均匀的分布，以及 lm_head 的参数占比和 weight tying 的动机。

    **下一节 1.2**：用 logits 和「下一个 token」算交叉熵 loss，处理 padding，并反向传播。
    """),
]
