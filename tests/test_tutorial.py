"""``make tutorial``'s executor, on the fastest notebook (01): the executed copy carries its
figures inline, the PNGs are saved too, and the outputs are clean (no progress-bar residue, no
warnings on stderr, no absolute path of the machine)."""

from pathlib import Path

import nbformat
import pytest

from kdas_utils.tutorial import KERNEL_ENV, kernel_env, machine_folders, residue

pytestmark = pytest.mark.slow  # executes notebook 01

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_data_preparation.ipynb"


@pytest.fixture(scope="module")
def executed(tutorial_01):
    """``(out, times, notebook)``: notebook 01 as ``make tutorial`` executes it (``tests/conftest.py``)."""
    return tutorial_01


def test_kernel_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.delenv("KDAS_RUNS_DIR", raising=False)
    env = kernel_env(tmp_path)
    assert env["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
    assert env["KDAS_RUNS_DIR"] == str(tmp_path.resolve()) and env["KDAS_PROGRESS"] == "0"
    monkeypatch.setenv("KDAS_RUNS_DIR", "elsewhere")
    assert kernel_env(tmp_path)["KDAS_RUNS_DIR"] == "elsewhere"  # the user's choice stands
    assert KERNEL_ENV.items() <= kernel_env(tmp_path).items()


def test_residue_finds_stderr_progress_bars_and_paths(tmp_path):
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="UserWarning: careful\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "epoch 1/2:   0%|          | 0/15"}),
        nbformat.v4.new_output("stream", name="stdout", text=f"saved to {tmp_path / 'runs' / 'a.png'}\n"),
        nbformat.v4.new_output("stream", name="stdout", text="saved to runs/a.png, 100 % done\n"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell])
    found = residue(notebook, [tmp_path])
    assert len(found) == 3 and all(line.startswith("code cell 1") for line in found)
    assert "stderr: UserWarning: careful" in found[0] and "0%|" in found[1] and str(tmp_path) in found[2]
    assert all(len(folder.parts) > 1 for folder in machine_folders())


def test_executed_notebook_carries_its_figures(executed):
    out, times, notebook = executed
    assert list(times) == [NOTEBOOK.name] and times[NOTEBOOK.name] > 0
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    saved = sorted((out / "figures").glob("01_*.png"))
    assert len(saved) > 0, "save_figure still writes the PNGs under <out>/figures/"
    assert len(images) >= len(saved), f"{len(images)} inline images for {len(saved)} saved figures"


def test_executed_notebook_has_no_warnings_or_progress_bars(executed):
    _, _, notebook = executed
    assert [line for line in residue(notebook) if "absolute path" not in line] == []


def test_executed_notebook_shows_no_absolute_path(executed):
    _, _, notebook = executed
    assert [line for line in residue(notebook) if "absolute path" in line] == []


def test_the_kernels_talk_over_local_sockets_without_a_warning(capfd):
    import asyncio

    from kdas_utils.tutorial import LocalKernelManager

    async def run() -> tuple[LocalKernelManager, str]:
        km = LocalKernelManager(kernel_name="python3")
        await km.start_kernel()
        try:
            client = km.client()
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive("print(6 * 7)", timeout=60, output_hook=lambda msg: None)
            client.stop_channels()
        finally:
            await km.shutdown_kernel(now=False)
        return km, reply["content"]["status"]

    km, status = asyncio.run(run())
    assert km.transport == "ipc" and status == "ok"
    assert not Path(km.sockets).exists()  # its socket folder goes with it
    assert "without encryption" not in capfd.readouterr().err


def test_a_committed_lesson_keeps_text_and_drops_figures_videos_and_timings():
    import nbformat

    from kdas_utils.tutorial import committed_copy

    cell = nbformat.v4.new_code_cell("x")
    cell.metadata["execution"] = {"iopub.execute_input": "2026-12-07T00:00:00Z"}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="printed\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure size 1x1>"}),
        nbformat.v4.new_output("display_data", data={"text/html": '<video src="data:video/mp4;base64,AAAA">'}),
        nbformat.v4.new_output(
            "execute_result", data={"text/plain": "table", "text/html": "<table/>"}, execution_count=1
        ),
        nbformat.v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"}, "text/plain": "Box()"}
        ),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {}}})
    kept = committed_copy(notebook).cells[0]
    assert [o.get("text") or dict(o.data) for o in kept.outputs] == [
        "printed\n",
        {"text/plain": "table", "text/html": "<table/>"},
        {"text/plain": "Box()"},
    ]
    assert "execution" not in kept.metadata and "widgets" not in committed_copy(notebook).metadata
    assert notebook.cells[0].outputs[1].data["image/png"] == "iVBOR"  # the executed copy is left as it was
