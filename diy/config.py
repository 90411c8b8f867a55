"""The course's hyper-parameters in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import DIYConfigError


def llama_intermediate_size(hidden_size: int, multiple_of: int = 64) -> int:
    """SwiGLU width as in Llama: 8/3 of hidden_size, rounded up to a multiple of 64.

    SwiGLU has three matrices instead of two, so 8/3 (instead of 4) keeps the MLP's parameter
    count close to a classic 4x MLP. 256 -> 704.
    """
    raw = int(8 * hidden_size / 3)
    return multiple_of * ((raw + multiple_of - 1) // multiple_of)


@dataclass
class DIYConfig:
    vocab_size: int = 6400  # number of token ids; the tokenizer of the course has 6400
    num_layers: int = 2  # transformer blocks (decoder layers)
    hidden_size: int = 256  # width of every hidden state, the "d_model"
    num_heads: int = 4  # attention heads; head_dim = hidden_size // num_heads = 64
    max_seq_len: int = 128  # longest sequence (cache included); size of the RoPE tables
    dropout: float = 0.1  # on attention weights and on each block's residual branch
    # Derived from hidden_size when left as None (704 for 256), see llama_intermediate_size.
    intermediate_size: int | None = None
    rope_theta: float = 10000.0  # RoPE base; Llama 1/2 use 10000
    rms_norm_eps: float = 1e-6  # added to the mean square in RMSNorm, as in Llama
    pad_token_id: int = 0  # id used to right-pad a batch (label positions use ignore_index)
    initializer_range: float = 0.02  # std of the N(0, std) init of every weight matrix

    def __post_init__(self) -> None:
        if self.intermediate_size is None and isinstance(self.hidden_size, int):
            self.intermediate_size = llama_intermediate_size(self.hidden_size)
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        for name in ("vocab_size", "num_layers", "hidden_size", "num_heads", "max_seq_len",
                     "intermediate_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise DIYConfigError(
                    f"超参数 {name}={value!r} 不合法：它必须是正整数。",
                    f"把 {name} 设成一个大于 0 的整数，例如课程默认值 {getattr(DIYConfig, name)}。",
                    f"{name} must be a positive integer, got {value!r}.",
                )
        if self.hidden_size % self.num_heads != 0:
            raise DIYConfigError(
                f"hidden_size={self.hidden_size} 不能被 num_heads={self.num_heads} 整除，"
                "无法平均分给每个注意力头。",
                "选择能整除的组合，例如 hidden_size=256, num_heads=4（每个头 64 维）。",
                "hidden_size must be divisible by num_heads.",
            )
        if self.head_dim % 2 != 0:
            raise DIYConfigError(
                f"每个头的维度 head_dim = {self.hidden_size} // {self.num_heads} = "
                f"{self.head_dim} 是奇数，RoPE 需要把维度两两配对旋转。",
                "让 hidden_size // num_heads 为偶数，例如 256 // 4 = 64。",
                "head_dim must be even for rotary position embeddings.",
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise DIYConfigError(
                f"dropout={self.dropout!r} 不合法：它是丢弃概率，必须在 [0, 1) 之间。",
                "用 0.0（不丢弃）到 0.5 之间的值，课程默认 0.1。",
                "dropout must be a probability in [0, 1).",
            )
        for name in ("rope_theta", "rms_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise DIYConfigError(
                    f"{name}={value!r} 不合法：它必须是正数。",
                    f"保持默认值 {getattr(DIYConfig, name)}。",
                    f"{name} must be a positive number.",
                )
        if not isinstance(self.pad_token_id, int) or not 0 <= self.pad_token_id < self.vocab_size:
            raise DIYConfigError(
                f"pad_token_id={self.pad_token_id!r} 不在词表范围 [0, {self.vocab_size}) 内。",
                "用词表里一个专门的 id 做 padding，课程默认是 0。",
                "pad_token_id must be a token id inside the vocabulary.",
            )
