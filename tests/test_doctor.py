"""python -m diy.classroom.doctor: no ❌ in the course environment, and a clear ❌ with a fix
otherwise.
Nothing here depends on which torch build (CPU / CUDA) or which supported Python is installed."""

import re
import subprocess
import sys

from diy.classroom import doctor, python_support
from tools.notebook_builder import ROOT


def test_course_environment_is_healthy():
    out = subprocess.run([sys.executable, "-m", "diy.classroom.doctor"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout
    assert "❌" not in out.stdout
    for expected in ["Python 3.", "torch 2.13.0", "✅ Jupyter kernel python3",
                     "✅ kernel 与当前解释器是同一个环境", "✅ DIYModel 前向一次"]:
        assert expected in out.stdout, out.stdout


def test_old_python():
    finding = doctor.check_python((3, 10, 13))
    assert not finding.ok and "3.10.13" in finding.what and "≥ 3.11" in finding.what
    assert "修复" in finding.render() and "make clean" in finding.fix


def test_unmeasured_new_python_is_a_warning_not_a_failure():
    finding = doctor.check_python((3, 99, 0))
    assert finding.ok and finding.warning and finding.render().startswith("⚠️")


def test_measured_pythons_pass_quietly():
    for version in python_support.MEASURED:
        finding = doctor.check_python((*version, 0))
        assert finding.ok and not finding.warning and finding.render().startswith("✅")


def test_supported_python_is_said_once():
    """pyproject.toml's requires-python and the Makefile's check are the same statement."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    floor = re.search(r'requires-python = ">=(\d+)\.(\d+)"', pyproject)
    assert floor and tuple(map(int, floor.groups())) == python_support.MINIMUM
    assert python_support.MEASURED[0] == python_support.MINIMUM


def test_makefile_checks_python_before_it_creates_the_venv():
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert recipe.index("diy/classroom/python_support.py") < recipe.index("-m venv $(VENV)")


def test_python_check_script_messages():
    status, message = python_support.verdict((3, 10, 13))
    assert status == "stop" and "3.10.13" in message and "3.11" in message
    assert "uv python install" in message and "deadsnakes" in message and "conda" in message
    status, message = python_support.verdict((3, 12, 1), has_venv=False)
    assert status == "stop" and "python3.12-venv" in message
    assert python_support.verdict((3, 99, 0))[0] == "note"
    # the script itself, run by this (supported) interpreter: exit 0, nothing on stderr
    run = subprocess.run([sys.executable, str(ROOT / "diy" / "classroom" / "python_support.py")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr == ""


def test_version_mismatch_and_missing_package(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\ntorch==2.13.0\nnumpy==0.0.1\n"
                            "surely-not-installed-pkg==1.0\n-e .\n", encoding="utf-8")
    findings = {f.what.split()[0]: f for f in doctor.check_versions(requirements)}
    assert findings["torch"].ok  # 2.13.0+cpu satisfies ==2.13.0
    assert not findings["numpy"].ok and "0.0.1" in findings["numpy"].what
    assert "make install" in findings["numpy"].fix
    assert not findings["surely-not-installed-pkg"].ok


def test_missing_requirements_file(tmp_path):
    [finding] = doctor.check_versions(tmp_path / "nope.txt")
    assert not finding.ok and "--requirements" in finding.fix


def test_no_python3_kernel(monkeypatch):
    monkeypatch.setattr(doctor, "kernel_spec", lambda name="python3": None)
    [finding] = doctor.check_kernel()
    assert not finding.ok and "ipykernel install" in finding.fix


def test_kernel_from_another_environment(tmp_path):
    # A kernel whose interpreter cannot import diy: the system Python outside the venv.
    other = tmp_path / "python"
    other.write_text("#!/bin/sh\nexec env -i /bin/sh -c 'exit 1'\n", encoding="utf-8")
    other.chmod(0o755)
    findings = doctor.check_kernel([str(other), "-m", "ipykernel_launcher"])
    assert findings[0].ok
    assert not findings[1].ok and "import diy 失败" in findings[1].what
    assert "make lab" in findings[1].fix


def test_bare_python_in_a_kernelspec_means_this_interpreter():
    assert doctor.kernel_python("python") == sys.executable
    assert doctor.kernel_python("/opt/other/bin/python") == "/opt/other/bin/python"


def test_failing_run_exits_1(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(doctor, "check_backbone",
                        lambda: doctor.Finding(False, "DIYModel 前向失败", "重新 make install"))
    assert doctor.main(["--requirements", str(ROOT / "requirements.txt")]) == 1
    out = capsys.readouterr().out
    assert "❌ DIYModel 前向失败" in out and "修复：重新 make install" in out
    assert "1 项需要修复" in out


def test_torch_build_is_reported():
    cpu = doctor.check_torch_build(("2.13.0+cpu", None, False))
    assert cpu.ok and "CPU 版" in cpu.what and "2.13.0+cpu" in cpu.what
    with_gpu = doctor.check_torch_build(("2.13.0", "12.8", True))
    assert with_gpu.ok and "CUDA 12.8" in with_gpu.what
    # a CUDA build without a GPU works: big, not broken — a warning with the fix, never ❌
    wasted = doctor.check_torch_build(("2.13.0", "12.8", False))
    assert wasted.ok and wasted.warning and "没有可用的 GPU" in wasted.what
    assert wasted.render().startswith("⚠️")
    assert "--index-url https://download.pytorch.org/whl/cpu" in wasted.fix
    assert "torch==2.13.0" in wasted.fix  # the pin, read from requirements.txt
