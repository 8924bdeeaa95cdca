"""make run's demo: --demo also generates and deploys demo-llm, and the
banner's chat curl line works verbatim; a second start reuses it."""
import json
import subprocess

from conftest import SCALE, wait_for


def _chat_curl(stdout):
    lines = stdout.splitlines()
    start = [i for i, l in enumerate(lines) if "chat with demo-llm" in l]
    assert start, f"no chat line in the banner:\n{stdout}"
    cmd = []
    for part in lines[start[0] + 1:]:
        part = part.strip()
        if part.endswith("\\"):
            cmd.append(part[:-1].strip())
            continue
        cmd.append(part)
        break
    return " ".join(cmd)


def _run(d):
    wait_for(lambda: d.check_alive() or "chat with demo-llm" in d.stdout(),
             90 * SCALE, interval=0.1, what="the demo banner")
    cmd = _chat_curl(d.stdout())
    assert cmd.startswith("curl ") and "/v1/chat/completions" in cmd, cmd
    p = subprocess.run(["sh", "-c", cmd], capture_output=True,
                       timeout=60 * SCALE, cwd=str(d.data_dir.parent))
    assert p.returncode == 0, f"{cmd}\n{p.stderr.decode()}"
    out = json.loads(p.stdout)
    assert out["object"] == "chat.completion", out
    assert out["model"] == "demo-llm"
    assert out["usage"]["completion_tokens"] > 0
    return out


def test_demo_llm_chat_line(maasd_factory):
    d = maasd_factory(demo=True)
    d.wait_ready()
    _run(d)
    assert (d.data_dir / "models" / "demo-llm.gguf").exists()
    assert d.stop() == 0
    d2 = maasd_factory(demo=True, data_dir=d.data_dir)
    d2.wait_ready()
    _run(d2)
    mods = d2.aget("/admin/v1/models").json()["data"]
    assert [m["name"] for m in mods].count("demo-llm") == 1, mods
