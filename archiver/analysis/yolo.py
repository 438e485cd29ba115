"""``onnx``: a user's own YOLO-format object detector (an ``.onnx`` file) through onnxruntime.

Optional extra ``analysis-onnx`` (onnxruntime; numpy comes with it). Nothing is downloaded: the model
and its labels are files the user names (``[analysis.onnx] model = …, labels = …``).

The model takes one image ``[1, 3, H, W]`` (RGB, 0-1; H and W from the model, 640 when dynamic; the
frame is scaled to it, not letter-boxed) and returns one tensor in either YOLO layout:

- ``[1, 4 + classes, boxes]`` (YOLOv8/v11 exports): ``cx, cy, w, h`` then one score per class;
- ``[1, boxes, 5 + classes]`` (YOLOv5/v7): ``cx, cy, w, h, objectness`` then class scores (the
  confidence is objectness x class score).

With a labels file the class count tells the layouts apart; without one the longer axis is the boxes.

Boxes under ``min_confidence`` or with a label outside ``allow`` (when set) are dropped, overlapping
boxes of one label are merged by non-maximum suppression (``iou``), and each remaining box becomes a tag
at the frame's time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from archiver.analysis import Detection, DetectorUnavailable, Tag
from archiver.analysis.frames import sample_frames

if TYPE_CHECKING:
    from archiver.config import OnnxSettings

EXTRA = "pip install 'blink-archiver[analysis-onnx]' (onnxruntime)"


def nms(boxes: Any, scores: Any, iou: float) -> list[int]:
    """Indices of the boxes (``[n, 4]`` x1 y1 x2 y2) kept by greedy non-maximum suppression."""
    import numpy as np

    order = np.argsort(-scores)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return keep


def decode(
    output: Any, labels: list[str], min_confidence: float, allow: set[str], iou: float
) -> list[tuple[str, float]]:
    """(label, confidence) of the boxes one YOLO output tensor keeps (see the module's docstring)."""
    import numpy as np

    a = np.asarray(output, dtype=np.float32)
    a = a.reshape(a.shape[-2:]) if a.ndim == 3 else a
    if a.ndim != 2 or min(a.shape) < 5:
        raise ValueError(f"not a YOLO output: shape {tuple(np.shape(output))}")
    nc = len(labels)
    if nc and a.shape[0] == 4 + nc:  # the labels say which layout; else the longer axis is the boxes
        v8, rows = True, a.T
    elif nc and a.shape[1] in (4 + nc, 5 + nc):
        v8, rows = a.shape[1] == 4 + nc, a
    else:
        v8 = a.shape[0] < a.shape[1]
        rows = a.T if v8 else a
    # YOLOv8 and later: class scores only; YOLOv5/v7: objectness x class score
    scores = rows[:, 4:] if v8 else rows[:, 5:] * rows[:, 4:5]
    if scores.shape[1] == 0:
        raise ValueError(f"not a YOLO output: shape {tuple(np.shape(output))} has no class scores")
    cls = scores.argmax(axis=1)
    conf = scores[np.arange(len(cls)), cls]
    names = [labels[c] if c < len(labels) else f"class{c}" for c in cls]
    wanted = np.array(
        [conf[i] >= min_confidence and (not allow or names[i] in allow) for i in range(len(cls))]
    )
    if not wanted.any():
        return []
    cx, cy, w, h = (rows[:, k] for k in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    out: list[tuple[str, float]] = []
    for label in sorted({names[i] for i in np.flatnonzero(wanted)}):
        idx = np.array([i for i in np.flatnonzero(wanted) if names[i] == label])
        for k in nms(boxes[idx], conf[idx], iou):
            out.append((label, round(float(conf[idx[k]]), 4)))
    return sorted(out, key=lambda t: (-t[1], t[0]))


class OnnxDetector:
    name: ClassVar[str] = "onnx"
    version: ClassVar[str] = "1"

    def __init__(self, settings: OnnxSettings) -> None:
        if settings.model is None:
            raise DetectorUnavailable("analysis: the onnx detector needs [analysis.onnx] model = <file.onnx>")
        model = settings.model.expanduser()
        if not model.is_file():
            raise DetectorUnavailable(f"analysis: the onnx model {model} is not a readable file")
        try:
            import onnxruntime as ort
        except ImportError:
            raise DetectorUnavailable(f"analysis: the onnx detector needs onnxruntime: {EXTRA}") from None
        self.settings = settings
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one clip at a time, beside the archiver's own work
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise DetectorUnavailable(f"analysis: cannot load the onnx model {model}: {exc}") from None
        first = self._session.get_inputs()[0]
        self._input = first.name
        shape = list(first.shape)
        self._h = shape[2] if len(shape) == 4 and isinstance(shape[2], int) else 640
        self._w = shape[3] if len(shape) == 4 and isinstance(shape[3], int) else 640
        self.labels: list[str] = []
        if settings.labels is not None:
            try:
                text = settings.labels.expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise DetectorUnavailable(f"analysis: cannot read the onnx labels: {exc}") from None
            self.labels = [line.strip() for line in text.splitlines() if line.strip()]
        self.allow = {a.strip() for a in settings.allow if a.strip()}

    def analyze(self, path: Path) -> Detection:
        import numpy as np

        s = self.settings
        tags: list[Tag] = []
        for sample in sample_frames(Path(path), s.frames):
            rgb = sample.frame.reformat(width=self._w, height=self._h, format="rgb24").to_ndarray()
            x = (rgb.transpose(2, 0, 1)[None].astype(np.float32)) / 255.0
            output = self._session.run(None, {self._input: x})[0]
            for label, conf in decode(output, self.labels, s.min_confidence, self.allow, s.iou):
                tags.append(Tag(label=label, confidence=min(conf, 1.0), at_s=round(sample.at_s, 2)))
        return Detection(tags=tags)
