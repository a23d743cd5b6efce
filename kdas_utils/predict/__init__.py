"""Your own frames: a trained network on image files, folders, colonoscopy videos and live streams.

    from kdas_utils.predict import Predictor

    predictor = Predictor("runs/checkpoints/student-kdas-s0-standard/best.pt")
    result = predictor.predict("my_frame.jpg")      # a path, a PIL image or an (H, W, 3) uint8 RGB array
    result.mask, result.probability                 # (H, W) bool and float32, at the frame's own size

Four rooms: :mod:`.predictor` (the network on one frame, its backends), :mod:`.inputs` (which files, and
the names of their outputs), :mod:`.stream` (decoding, the network and writing at once, for videos and
live sources) and :mod:`.run` (:func:`predict_inputs`, what ``kdas predict`` runs).
"""

from .inputs import (
    CSV_NAME,
    IMAGE_SUFFIXES,
    OVERLAYS,
    VIDEO_SUFFIXES,
    Inputs,
    Outputs,
    Source,
    check_out,
    collect_inputs,
    outputs_of,
    planned_outputs,
    stream_source,
)
from .predictor import (
    BACKENDS,
    DEFAULT_SIZE,
    OnnxBackend,
    PredictInputError,
    Prediction,
    Predictor,
    TorchBackend,
    as_rgb,
    cached_onnx,
    choose_backend,
    default_weights,
    onnx_runtime_available,
    read_rgb,
    recorded_size,
)
from .run import CSV_COLUMNS, VIDEO_ERRORS, FrameLog, PredictReport, predict_inputs, read_rows
from .stream import Frame, Pipeline, PipelineReport, VideoReader, count_frames
from .writers import OVERLAY_SIZE, MaskVideo, OverlayVideo, overlay_size, read_masks, write_clip

__all__ = [
    "BACKENDS",
    "CSV_COLUMNS",
    "CSV_NAME",
    "DEFAULT_SIZE",
    "IMAGE_SUFFIXES",
    "OVERLAYS",
    "OVERLAY_SIZE",
    "VIDEO_ERRORS",
    "VIDEO_SUFFIXES",
    "Frame",
    "FrameLog",
    "Inputs",
    "MaskVideo",
    "OnnxBackend",
    "Outputs",
    "OverlayVideo",
    "Pipeline",
    "PipelineReport",
    "PredictInputError",
    "PredictReport",
    "Prediction",
    "Predictor",
    "Source",
    "TorchBackend",
    "VideoReader",
    "as_rgb",
    "cached_onnx",
    "check_out",
    "choose_backend",
    "collect_inputs",
    "count_frames",
    "default_weights",
    "onnx_runtime_available",
    "outputs_of",
    "overlay_size",
    "planned_outputs",
    "predict_inputs",
    "read_masks",
    "read_rgb",
    "read_rows",
    "recorded_size",
    "stream_source",
    "write_clip",
]
