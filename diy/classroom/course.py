"""The course in one table: steps → lessons → exercises → self-checks.

This is the only list of lessons. Everything else derives from it: the notebook builder
(`tools/notebook_builder.py` writes each notebook's title, time estimate and cell tags from
here), the self-check lookup (`diy.classroom.checks`), the grader (`diy.classroom.grade` finds
a notebook's lesson and its check cells by the metadata and tags the builder wrote), the
kernel's NameError hints and the README's lesson table. Adding a lesson means: one lesson
source in `tools/lessons/` plus one `Lesson(...)` entry below; `tests/test_course.py` proves
the derived places agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    id: str  # "1.2a": what the self-check prints and the grader's column
    check: str  # the self-check function in diy.classroom.checks that its check cell calls
    defines: tuple[str, ...]  # names the exercise cell defines and the check cell reads


@dataclass(frozen=True)
class Lesson:
    name: str  # file stem of notebooks/NAME.ipynb, solutions/NAME.ipynb, tools/lessons/NAME.py
    number: str  # "1.2"
    title: str  # the notebook's heading after "第一步 · 1.2"
    minutes: str  # suggested study time, e.g. "15～20"
    topics: str  # one line for the README's table
    exercises: tuple[Exercise, ...]


@dataclass(frozen=True)
class Step:
    number: int
    label: str  # "第一步"
    title: str
    lessons: tuple[Lesson, ...]


STEPS = (
    Step(0, "第零步", "自己搭 DIYModel", (
        Lesson("step0_1_norm", "0.1", "词嵌入与 RMSNorm", "15～20",
               "`nn.Embedding` 按 id 取行、残差让尺度变大、自己写 RMSNorm（与 `torch.nn.RMSNorm`、"
               "`LlamaRMSNorm` 相同）、与 LayerNorm 的区别", (
                   Exercise("0.1", "check_rms_norm", ("RMSNorm",)),
               )),
        Lesson("step0_2_rope", "0.2", "RoPE 旋转位置编码", "25～35",
               "注意力不知道顺序（置换实验）、`inv_freq` 与 cos 曲线、cos/sin 表、"
               "`rotate_half`（前后两半 vs 相邻交错）、带缓存的偏移、点积只看 m − n", (
                   Exercise("0.2a", "check_rotary", ("RotaryEmbedding",)),
                   Exercise("0.2b", "check_apply_rotary", ("rotate_half", "apply_rotary")),
               )),
        Lesson("step0_3_attention", "0.3", "因果自注意力与 KV cache", "50～70",
               "`q_proj`/`k_proj`/`v_proj`/`o_proj`、分头的 view/transpose、√D、"
               "因果与 padding mask、与 SDPA 和 `LlamaAttention` 相同、真实句子上的注意力热力图、"
               "KV cache、dropout", (
                   Exercise("0.3a", "check_causal_mask", ("causal_mask",)),
                   Exercise("0.3b", "check_attention", ("DIYAttention",)),
               )),
        Lesson("step0_4_model", "0.4", "SwiGLU、解码层与完整的 DIYModel", "55～75",
               "SwiGLU 与 704、pre-norm 解码层、`DIYModel` 的构造与 forward、"
               "手算 3,245,312 个参数、`strict=True` 装进参考权重并与 `LlamaModel` 相同、"
               "`[layer] * n`、导出你自己的 `DIYModel.py` 并跑符合性检查", (
                   Exercise("0.4a", "check_backbone_parts",
                            ("RMSNorm", "RotaryEmbedding", "rotate_half", "apply_rotary",
                             "causal_mask", "DIYAttention")),
                   Exercise("0.4b", "check_mlp", ("DIYMLP",)),
                   Exercise("0.4c", "check_decoder_layer", ("DIYDecoderLayer",)),
                   Exercise("0.4d", "check_diy_model", ("DIYModel",)),
               )),
    )),
    Step(1, "第一步", "从 hidden_states 到 logits", (
        Lesson("step1_1_lm_head", "1.1", "加上 lm_head：从 hidden_states 到 logits", "15～20",
               "lm_head、logits 的含义、概率分布图、参数占比", (
                   Exercise("1.1", "check_lm_head", ("build_lm_head", "forward_to_logits")),
               )),
        Lesson("step1_2_loss_backward", "1.2", "用 logits 算 loss 并反向传播", "25～35",
               "手算交叉熵、真句子的错位、展平、padding、`ignore_index` 与 −100、ln(6400)、"
               "梯度、一步优化", (
                   Exercise("1.2a", "check_next_token_loss", ("next_token_loss",)),
                   Exercise("1.2b", "check_backward", ("loss",)),
                   Exercise("1.2c", "check_train_step", ("train_step",)),
               )),
        Lesson("step1_3_causal_lm", "1.3", "封装成完整的语言模型：DIYForCausalLM", "15～20",
               "`DIYForCausalLM`、与 1.2 逐元素相同、`causal_lm_loss`、KV cache、一步优化", (
                   Exercise("1.3", "check_causal_lm", ("DIYForCausalLM",)),
               )),
    )),
    Step(2, "第二步", "最小训练循环：过拟合一段真实的中文短文", (
        Lesson("step2_1_tokens_batches", "2.1", "文字 → token id → batch", "15～20",
               "字符级分词器、课程短文、token 流、随机窗口 `get_batch`、可复现的 generator", (
                   Exercise("2.1", "check_get_batch", ("get_batch",)),
               )),
        Lesson("step2_2_training_loop", "2.2", "训练循环", "30～40",
               "过拟合一个 batch、`train_step`、`evaluate`、自己写训练循环（与 `train` 逐步相同）、"
               "loss 曲线与困惑度、梯度范数与裁剪（有/无裁剪）、忘了 `zero_grad` 的四种组合", (
                   Exercise("2.2a", "check_training_step", ("train_step",)),
                   Exercise("2.2b", "check_evaluate", ("evaluate",)),
                   Exercise("2.2c", "check_train_loop", ("train_loop",)),
               )),
        Lesson("step2_3_it_learns", "2.3", "验证「能学」：背出整段短文", "20～25",
               "贪心续写、训练前后对比、换个开头、学习率太大/太小、`save_pretrained` / "
               "`from_pretrained`、留出句子上的 loss：看见过拟合", (
                   Exercise("2.3", "check_greedy_continue", ("greedy_continue",)),
               )),
    )),
    Step(3, "第三步", "生成：KV cache 与采样", (
        Lesson("step3_1_kv_cache", "3.1", "贪心生成与 KV cache", "20～30",
               "无缓存的贪心循环、因果性为什么让缓存正确、prefill + 逐 token 解码、两者逐 id 相同、"
               "每个新 token 的耗时图、什么随长度增长", (
                   Exercise("3.1a", "check_greedy_no_cache", ("greedy_no_cache",)),
                   Exercise("3.1b", "check_greedy_with_cache", ("greedy_with_cache",)),
               )),
        Lesson("step3_2_sampling", "3.2", "采样：温度、top-k、top-p", "30～40",
               "真实的下一个 token 分布、温度 / top-k / top-p 前后的分布图、自己写 top-p、"
               "过滤的顺序为什么要紧、可复现的 generator", (
                   Exercise("3.2a", "check_top_p", ("apply_top_p",)),
                   Exercise("3.2b", "check_sample_next_token", ("sample_next_token",)),
               )),
        Lesson("step3_3_generate", "3.3", "统一的 generate", "35～45",
               "`generate`、左 padding 与每行自己的位置编号、自己写一个小 generate（eos、批量）"
               "并与 `generate` 逐 id 相同、给自己的骨干加上 `attention_mask`、重复惩罚、流式输出、"
               "与 transformers 逐 id 相同", (
                   Exercise("3.3a", "check_left_pad", ("left_pad",)),
                   Exercise("3.3b", "check_position_ids", ("position_ids_from_mask",)),
                   Exercise("3.3c", "check_my_generate", ("my_generate",)),
                   Exercise("3.3d", "check_forward_with_mask", ("DIYModelWithMask",)),
               )),
    )),
    Step(4, "第四步", "真实语料：在宋词上预训练", (
        Lesson("step4_1_corpus_tokens", "4.1", "语料与 token", "35～45",
               "21,053 首宋词、按首划分留出集、字频与 Zipf、词表覆盖率、自己写字节级 BPE "
               "并与 `tokenizers` 的 `BpeTrainer` 合并顺序相同、BPE 在古诗词上省得很少、"
               "bits per character、uint16 的 token 流（`numpy.memmap`）与随机窗口", (
                   Exercise("4.1a", "check_bpe_merge", ("count_pairs", "merge")),
                   Exercise("4.1b", "check_bpe_codec", ("encode", "decode")),
                   Exercise("4.1c", "check_stream_batch", ("get_batch",)),
               )),
        Lesson("step4_2_recipe", "4.2", "训练配方", "30～40",
               "warmup + 余弦学习率、梯度累积（与大 batch 的梯度相同）、只对矩阵做权重衰减、"
               "unigram / bigram 基线、留出集 bpc 曲线与基线、课程的预训练", (
                   Exercise("4.2a", "check_lr_schedule", ("lr_at",)),
                   Exercise("4.2b", "check_accumulation", ("accumulate_gradients",)),
               )),
        Lesson("step4_3_what_it_learned", "4.3", "它学会了什么", "25～35",
               "按词牌写词（训练前 / 第二步的模型 / 预训练后）、「下一句」四选一、"
               "格律（短句字数）、是不是在抄（与训练集最长的相同片段）、`python -m diy.pretrain`", (
                   Exercise("4.3a", "check_line_log_prob", ("line_log_prob",)),
                   Exercise("4.3b", "check_meter", ("meter",)),
               )),
    )),
)

LESSONS: dict[str, Lesson] = {lesson.name: lesson for step in STEPS for lesson in step.lessons}
EXERCISES: dict[str, Exercise] = {e.id: e for lesson in LESSONS.values() for e in lesson.exercises}
LESSON_OF_EXERCISE: dict[str, str] = {e.id: lesson.name for lesson in LESSONS.values()
                                      for e in lesson.exercises}
STEP_OF_LESSON: dict[str, Step] = {lesson.name: step for step in STEPS for lesson in step.lessons}

# Cell tags the builder writes; the grader finds cells by them.
EXERCISE_TAG, CHECK_TAG = "exercise", "self-check"
# Notebook metadata key the builder writes: {"diy": {"lesson": NAME}}.
METADATA_KEY = "diy"


def exercise_tag(exercise_id: str) -> str:
    return f"{EXERCISE_TAG}-{exercise_id}"


def check_tag(exercise_id: str) -> str:
    return f"{CHECK_TAG}-{exercise_id}"


def heading(lesson: Lesson) -> str:
    """The notebook's first lines: title and time estimate."""
    step = STEP_OF_LESSON[lesson.name]
    return (f"# {step.label} · {lesson.number} {lesson.title}\n\n"
            f"**预计时间**：{lesson.minutes} 分钟")


def readme_table() -> str:
    """The README's table of lessons (written between markers by `make notebooks`)."""
    lines = ["| 小节 | notebook | 内容 | 练习 | 建议时间 |", "| --- | --- | --- | --- | --- |"]
    for step in STEPS:
        for lesson in step.lessons:
            exercises = " / ".join(e.id for e in lesson.exercises)
            lines.append(f"| {lesson.number} | `{lesson.name}.ipynb` | {lesson.topics} | "
                         f"{exercises} | {lesson.minutes} 分钟 |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """python -m diy.classroom.course: the README's lesson table; --first [STEP]: the name of the
    course's (or that step's) first lesson, for make lab (make lab BACKBONE=... starts at
    step 1)."""
    if argv[:1] == ["--first"]:
        wanted = int(argv[1]) if len(argv) > 1 else STEPS[0].number
        print(next(step.lessons[0].name for step in STEPS if step.number == wanted))
    else:
        print(readme_table())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
