"""Interactive explorers for the notebooks: pure functions that make the pictures, and a thin
ipywidgets layer on top.

The logic (``AttentionExplorer.render``, drawn by :func:`kdas_utils.plots.render_overlay`) is plain NumPy
and torch, tested without a browser. ``AttentionExplorer.widget()`` wires it to dropdowns and sliders; the
picture is an ``ipywidgets.Image`` holding PNG bytes, so it works in JupyterLab, Colab and Voila.
"""

from __future__ import annotations

import io

import cv2
import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image as DisplayImage
from IPython.display import display
from PIL import Image, UnidentifiedImageError

from .config import get_profile, runs_dir
from .data import denormalize
from .distill.maps import LAYERS, is_head, layer_map, nice_scale
from .engine import select_device
from .errors import USER_ERRORS
from .models import load_network
from .plots import attention_heat, render_overlay, show_prediction
from .predict.predictor import Predictor, as_rgb
from .runs import figure_samples, trained_checkpoints


class AttentionExplorer:
    """Attention maps of several models on several frames.

    Args:
        models: ``{"teacher": net, "student": net}``.
        samples: items of an evaluation :class:`~kdas_utils.data.PolypDataset`
            (dicts with ``image`` ``(3, H, W)`` normalised, ``mask``, ``name``).

    Forward passes are computed once per (frame, model) and cached; changing ``p``, ``tau``,
    the layer or the opacity only redraws.
    """

    def __init__(self, models: dict, samples: list[dict]):
        if not models or not samples:
            raise ValueError("AttentionExplorer needs at least one model and one sample")
        self.models, self.samples = models, samples
        self.frames = [denormalize(s["image"]) for s in samples]
        self._outputs: dict[tuple[int, str], object] = {}
        self._image = None

    def output(self, frame: int, model: str):
        """The model's :class:`~kdas_utils.kdas.PolypOutput` on a frame (cached)."""
        key = (frame, model)
        if key not in self._outputs:
            net = self.models[model]
            device = next(net.parameters()).device
            with torch.inference_mode():
                self._outputs[key] = net.eval()(self.samples[frame]["image"][None].to(device))
        return self._outputs[key]

    def map(self, frame: int, model: str, layer: str, p: float = 2.0, tau: float = 2.0) -> np.ndarray:
        """``(H, W)``: the map of ``layer`` at the frame's size, relative (1 = the frame's mean for a
        stage, uniform for a head; :func:`~kdas_utils.distill.maps.layer_map`)."""
        size = self.frames[frame].shape[:2]
        return layer_map(self.output(frame, model), layer, size, p, tau)[0]

    def scale(self, frame: int, layer: str, p: float = 2.0, tau: float = 2.0) -> float:
        """The top of the colour bar for ``layer`` on a frame: every model's map fits under it
        (:func:`~kdas_utils.distill.maps.nice_scale`), so teacher and student share one scale."""
        return nice_scale(max(float(self.map(frame, m, layer, p, tau).max()) for m in self.models))

    def heat(self, frame: int, model: str, layer: str, p: float = 2.0, tau: float = 2.0, scale=None) -> np.ndarray:
        """``(H, W)`` in [0, 1]: :meth:`map` on the colour scale up to ``scale`` (default :meth:`scale`;
        linear for a stage, logarithmic for a head: :func:`kdas_utils.plots.attention_norm`)."""
        return attention_heat(layer, self.map(frame, model, layer, p, tau), scale or self.scale(frame, layer, p, tau))

    def render(
        self,
        frame: int = 0,
        model: str | None = None,
        layer: str = "stage4",
        p: float = 2.0,
        tau: float = 2.0,
        opacity: float = 0.5,
        scale: float | None = None,
    ) -> np.ndarray:
        """``(H, W, 3) uint8``: the frame with the attention map overlaid, coloured from 0 to ``scale``
        (default :meth:`scale`)."""
        model = model or next(iter(self.models))
        return render_overlay(self.frames[frame], self.heat(frame, model, layer, p, tau, scale), opacity)

    def widget(self):
        """The interactive explorer: frame, model, layer, p, tau and opacity controls over the picture."""
        frame = w.IntSlider(0, 0, len(self.samples) - 1, description="frame")
        model = w.Dropdown(options=list(self.models), description="model")
        layer = w.Dropdown(options=list(LAYERS), value="stage4", description="map")
        p = w.FloatSlider(2.0, min=1.0, max=4.0, step=0.5, description="p (stages)")
        tau = w.FloatSlider(2.0, min=0.5, max=8.0, step=0.5, description="tau (heads)")
        opacity = w.FloatSlider(0.5, min=0.0, max=1.0, step=0.05, description="opacity")
        picture = w.Image(format="png", width=320, height=320)
        caption = w.HTML()
        controls = (frame, model, layer, p, tau, opacity)

        def redraw(*_):
            rgb = self.render(frame.value, model.value, layer.value, p.value, tau.value, opacity.value)
            picture.value = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
            top = self.scale(frame.value, layer.value, p.value, tau.value)
            scale = (
                "0.1 (blue) to {:g} (red) x uniform, log scale"
                if is_head(layer.value)
                else "0 (blue) to {:g} (red) x the frame's mean"
            )
            caption.value = (
                f"<b>{model.value}</b>, {layer.value}, frame {self.samples[frame.value]['name']}; "
                f"colour {scale.format(top)}"
            )

        for control in controls:
            control.observe(redraw, names="value")
        redraw()
        self._image = picture
        return w.HBox([w.VBox(list(controls)), w.VBox([picture, caption])])


def explorer_app(profile=None, n_frames: int = 4, device=None):
    """The explorer over the profile's *trained* networks (teacher, student alone, KDAS student:
    those whose checkpoints exist), on ``n_frames`` evaluation frames; the widget of the Voila
    app ``apps/attention_explorer.ipynb``. Nothing is trained here.

    Raises:
        FileNotFoundError: no checkpoint of the profile yet; the message gives the command.
    """
    profile = profile or get_profile()
    found = trained_checkpoints(profile)
    if not found:
        raise FileNotFoundError(
            f"no trained network of the {profile.name!r} profile under {runs_dir() / 'checkpoints'}: "
            f"run `kdas train-teacher --profile {profile.name}` (or notebook 02) first"
        )
    device = select_device(device)
    models = {label: load_network(path, device) for label, path in found.items()}
    _, samples = figure_samples(profile, n_frames)
    return AttentionExplorer(models, samples).widget()


class FrameTryout:
    """Try the student on your own frame: an upload button (JPEG, PNG, TIFF, BMP) and a path box,
    and the prediction of a :class:`kdas_utils.predict.Predictor` drawn as frame, probability,
    mask and overlay (:func:`kdas_utils.plots.show_prediction`), with one line of numbers below.

    ``tryout.show(image)`` draws any frame (a path or an RGB array) without the widget, e.g. in a
    notebook executed headless."""

    def __init__(self, predictor):
        self.predictor = predictor
        self._picture = self._caption = None

    def picture(self, image, name: str = "") -> tuple[bytes, str]:
        """``(PNG bytes of the four panels, the summary line)`` of one frame."""
        frame = as_rgb(image)
        result = self.predictor.predict(frame)
        line = (
            f"{name or 'frame'} ({frame.shape[1]} x {frame.shape[0]}): "
            + (f"polyp, {result.area_fraction:.1%} of the frame, box {result.bbox}" if result.found else "no polyp")
            + f"; max probability {result.max_probability:.3f} at threshold {self.predictor.threshold:g}"
        )
        fig = show_prediction(frame, result.probability, result.mask, title=line)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue(), line

    def show(self, image, name: str = ""):
        """Draw one frame's prediction (a figure in a notebook) and return the summary line."""
        png, line = self.picture(image, name)
        display(DisplayImage(png))
        return line

    def widget(self):
        """FileUpload and a path box over the picture; a bad file gets a line naming it."""
        upload = w.FileUpload(accept=".jpg,.jpeg,.png,.tif,.tiff,.bmp", multiple=False, description="upload a frame")
        path = w.Text(
            placeholder="or type the path of a frame and press Enter",
            continuous_update=False,  # the value changes on Enter (or leaving the box), not on every key
            layout=w.Layout(width="420px"),
        )
        picture = w.Image(format="png", layout=w.Layout(max_width="900px", display="none"))  # shown once drawn
        caption = w.HTML("<i>upload a frame or give its path</i>")

        def run(image, name):
            try:
                picture.value, line = self.picture(image, name)
                picture.layout.display = ""
                caption.value = f"<b>{line}</b>"
            except USER_ERRORS as error:  # an unreadable file or path: say so under the picture
                caption.value = f"<span style='color:#b00'>{name}: {' '.join(str(error).split())}</span>"

        def uploaded(change):
            files = change["new"]
            if not files:
                return
            item = files[0]
            run(_decode_upload(item), item["name"])

        def typed(change):
            if change["new"].strip():
                run(change["new"].strip(), change["new"].strip())

        upload.observe(uploaded, names="value")
        path.observe(typed, names="value")
        self._picture, self._caption = picture, caption
        return w.VBox([w.HBox([upload, path]), picture, caption])


def _decode_upload(item: dict) -> np.ndarray:
    """An ipywidgets ``FileUpload`` item (``name``, ``content`` bytes) as ``(H, W, 3) uint8`` RGB.

    Raises:
        ValueError: the bytes are not an image; the message names the file.
    """
    try:
        with Image.open(io.BytesIO(bytes(item["content"]))) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{item['name']} cannot be decoded as an image ({error})") from error


def tryout_app(profile=None, weights=None, device=None):
    """The :class:`FrameTryout` widget over ``weights``, else the profile's best trained network for
    the job: the KDAS student, else the student alone, else the teacher (those whose checkpoints
    exist, :func:`kdas_utils.runs.trained_checkpoints`); part of the Voila app. A caption names it.

    Raises:
        FileNotFoundError: no checkpoint of the profile yet; the message gives the command.
    """
    profile = profile or get_profile()
    if weights is None:
        found = trained_checkpoints(profile)
        label = next((name for name in ("KDAS student", "student alone", "teacher") if name in found), None)
        if label is None:
            raise FileNotFoundError(
                f"no trained network of the {profile.name!r} profile under {runs_dir() / 'checkpoints'}: "
                f"run `kdas distill --profile {profile.name}` (or notebooks 02 and 05) first"
            )
        weights = found[label]
    else:
        label = str(weights)
    tryout = FrameTryout(Predictor(weights, profile=profile, device=device))
    return w.VBox([w.HTML(f"the network: <b>{label}</b> ({profile.name} profile)"), tryout.widget()])
