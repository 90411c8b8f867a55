"""Check the learner's environment: python -m diy.classroom.doctor

Prints ✅ / ⚠️ / ❌ per line, with the fix for each ⚠️ and ❌ in Chinese; paste the output into a
bug report. ⚠️ works but costs something (e.g. a CUDA build without a GPU: big, not broken).
Exit status 0 when nothing is ❌, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import python_support

REPO_ROOT = Path(__file__).resolve().parents[2]  # diy/classroom/doctor.py → the checkout
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")
INSTALL_FIX = "在仓库根目录运行 make install（或 .venv/bin/pip install -r requirements.txt）。"


@dataclass
class Finding:
    ok: bool
    what: str
    fix: str = ""
    warning: bool = False  # ok, but worth knowing (⚠️ with a fix); never fails the run

    def render(self) -> str:
        icon = "⚠️" if self.warning else ("✅" if self.ok else "❌")
        return f"{icon} {self.what}" + (f"\n   修复：{self.fix}" if self.fix else "")


def check_python(version=sys.version_info) -> Finding:
    text = f"Python {python_support.dotted(tuple(version[:3]))}"
    status, _ = python_support.verdict(version)
    measured = "、".join(map(python_support.dotted, python_support.MEASURED))
    if status == "stop":
        floor = python_support.dotted(python_support.MINIMUM)
        return Finding(False, f"{text} 太旧，课程需要 ≥ {floor}",
                       f"换一个 Python（测过：{measured}），make clean 后重新 make install；"
                       "怎么装见 README「支持的 Python」。")
    if status == "note":
        return Finding(True, f"{text}：课程只在 {measured} 上测过", warning=True,
                       fix="多半能用；遇到安装或输出问题时换成 3.12。")
    return Finding(True, text)


def pinned_requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def check_versions(requirements: Path) -> list[Finding]:
    if not requirements.exists():
        return [Finding(False, f"找不到 {requirements}",
                        "在课程仓库里运行本命令，或用 --requirements 指定 requirements.txt。")]
    findings = []
    for name, wanted in pinned_requirements(requirements).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            findings.append(Finding(False, f"{name} 没有安装（需要 {wanted}）", INSTALL_FIX))
            continue
        # a local build tag (torch 2.13.0+cpu) still satisfies ==2.13.0
        if installed == wanted or installed.split("+")[0] == wanted:
            findings.append(Finding(True, f"{name} {installed}"))
        else:
            findings.append(Finding(False, f"{name} 是 {installed}，课程固定的是 {wanted}"
                                    "（版本不同，notebook 的输出可能对不上）", INSTALL_FIX))
    return findings


CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def installed_torch_build() -> tuple[str, str | None, bool]:
    """(version, CUDA version or None for the CPU build, whether a GPU is usable)."""
    import torch

    cuda = torch.version.cuda
    return torch.__version__, cuda, bool(cuda) and torch.cuda.is_available()


def check_torch_build(build: tuple[str, str | None, bool] | None = None) -> Finding:
    """Which torch build is installed: the CPU build the course installs, or a CUDA build.
    A CUDA build on a machine without a usable GPU is several GB that the course never uses."""
    version, cuda, gpu = build or installed_torch_build()
    if cuda is None:
        return Finding(True, f"torch {version}：CPU 版（课程用的就是它）")
    if gpu:
        return Finding(True, f"torch {version}：CUDA {cuda} 版，有可用的 GPU")
    return Finding(True, f"torch {version} 是 CUDA {cuda} 版，这台机器没有可用的 GPU"
                   "（能用，只是几 GB 的 CUDA 库用不上）", warning=True,
                   fix="想省下磁盘可换成 CPU 版：.venv/bin/pip install --force-reinstall "
                   f"'{torch_pin()}' --index-url {CPU_INDEX}"
                   "（Linux；macOS/Windows 的 PyPI 版本来就是 CPU 版）。")


def torch_pin() -> str:
    pins = pinned_requirements(REPO_ROOT / "requirements.txt") \
        if (REPO_ROOT / "requirements.txt").exists() else {}
    return f"torch=={pins['torch']}" if "torch" in pins else "torch"


def kernel_spec(name: str = "python3"):
    """The argv of the Jupyter kernel `name`, or None when Jupyter has no such kernel."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return None
    try:
        return KernelSpecManager().get_kernel_spec(name).argv
    except NoSuchKernel:
        return None


def kernel_python(command: str) -> str:
    """The interpreter a kernelspec's argv[0] starts. Like jupyter_client, a bare "python"
    (or python3, python3.11) means the interpreter that runs Jupyter, i.e. this one."""
    major, minor = sys.version_info[:2]
    if command in {"python", f"python{major}", f"python{major}.{minor}"}:
        return sys.executable
    return command


def check_kernel(argv: list[str] | None = None) -> list[Finding]:
    """Kernel python3 exists, and its interpreter imports this very diy package."""
    argv = argv if argv is not None else kernel_spec()
    if argv is None:
        return [Finding(False, "Jupyter 里没有名为 python3 的 kernel",
                        ".venv/bin/python -m ipykernel install --sys-prefix --name python3，"
                        "或用 make lab 启动 JupyterLab。")]
    findings = [Finding(True, f"Jupyter kernel python3 存在：{' '.join(argv[:3])} …")]
    python = kernel_python(argv[0])
    probe = "import json, sys, diy; print(json.dumps([sys.prefix, diy.__file__]))"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return findings + [Finding(False, f"无法启动 kernel 的 Python（{python}）：{exc}",
                                   "重新安装 kernel：.venv/bin/python -m ipykernel install "
                                   "--sys-prefix --name python3。")]
    if out.returncode != 0:
        return findings + [Finding(False, f"kernel 的 Python（{python}）里 import diy 失败",
                                   "kernel 用的不是课程的 .venv：用 make lab 启动 JupyterLab，"
                                   "或在 .venv 里重新 make install。")]
    prefix, diy_file = json.loads(out.stdout.strip().splitlines()[-1])
    here = str(Path(__file__).resolve().parents[1] / "__init__.py")  # diy/__init__.py
    if Path(prefix).resolve() != Path(sys.prefix).resolve() or \
            Path(diy_file).resolve() != Path(here).resolve():
        return findings + [Finding(
            False, f"kernel 用的是另一个环境（{prefix}），不是当前的 {sys.prefix}",
            "用 make lab 启动 JupyterLab，让 notebook 和 diy 在同一个 .venv 里。")]
    where = Path(diy_file).parent
    return findings + [Finding(True, f"kernel 与当前解释器是同一个环境，import diy 来自 {where}")]


def check_backbone() -> Finding:
    try:
        import torch

        from .. import DIYModel

        torch.manual_seed(0)
        model = DIYModel().eval()
        with torch.no_grad():
            hidden = model(torch.randint(0, 6400, (2, 10)))
        if tuple(hidden.shape) != (2, 10, 256) or not torch.isfinite(hidden).all():
            raise RuntimeError(f"输出形状 {tuple(hidden.shape)} 或数值异常")
    except Exception as exc:  # noqa: BLE001 - any failure here is the finding
        return Finding(False, f"骨干网络 DIYModel 前向失败：{type(exc).__name__}: {exc}",
                       "重新 make install；仍失败请把本命令的完整输出贴到 issue 里。")
    return Finding(True, "DIYModel 前向一次：(2, 10) → (2, 10, 256)")


def check_backbone_file(text: str) -> int:
    """python -m diy.classroom.doctor --backbone FILE[:CLASS]: one line per item of the contract."""
    from ..backbone import BackboneSpec
    from . import conformance

    spec = BackboneSpec.parse(text)
    print(f"diy.classroom.doctor --backbone · {spec}")
    items = conformance.run(spec)
    for item in items:
        print(item.render())
    failed, skipped = conformance.failures(items)
    warned = sum(not item.required and not item.ok and not item.because for item in items)
    if failed:
        also = f"（另有 {skipped} 项因此没有检查，见 ⏭️）" if skipped else ""
        print(f"\n{failed} 项必需的约定没有满足{also}：改好之前，课程的第一～三步用不了这个骨干。")
    else:
        print("\n符合课程的约定：可以用 DIY_BACKBONE=" + text + " 运行第一～三步"
              + (f"（{warned} 项可选功能用不了，见 ⚠️）" if warned else "") + "。")
    return 1 if failed else 0


def run(requirements: Path) -> list[Finding]:
    return [check_python(), *check_versions(requirements), check_torch_build(), *check_kernel(),
            check_backbone()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diy.classroom.doctor",
                                     description="检查课程环境 / check the course environment")
    parser.add_argument("--requirements", type=Path, default=REPO_ROOT / "requirements.txt")
    parser.add_argument("--backbone", metavar="FILE[:CLASS]",
                        help="只检查你自己的骨干文件是否符合课程的约定 / check your own backbone "
                             "file against the course's contract (class defaults to DIYModel)")
    args = parser.parse_args(argv)
    if args.backbone:
        return check_backbone_file(args.backbone)
    print(f"diy.classroom.doctor · {sys.executable}")
    findings = run(args.requirements)
    for finding in findings:
        print(finding.render())
    bad = sum(not f.ok for f in findings)
    warned = sum(f.warning for f in findings)
    verdict = f"{bad} 项需要修复" if bad else ("可以用，但请看 ⚠️ 那几项" if warned else "一切正常")
    print(f"\n{verdict}（{len(findings)} 项检查）")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
