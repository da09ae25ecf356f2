"""Labelled photos -> one FER-framed 48x48 face each, cut with the crop that ``fer-batch analyze`` uses.

Image-folder datasets of one's own are usually photos, not face crops: resizing a whole 640x480 photo to 48x48
gives the model a thumbnail in which the face is a few pixels wide. ``--faces detect`` finds the face with the same
BlazeFace detector and the same crop (:func:`fer_batch.crops.align_face`) that ``analyze`` uses, so a model is
trained and measured on the faces it will later see.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class PhotoFaceCropper:
    """Finds the face in a labelled photo and cuts its crop; one instance per thread (it holds MediaPipe graphs).

    The detector is ``analyze``'s default (``auto``: both BlazeFace models, small faces included), started afresh
    for each photo as ``analyze`` starts it for each source, so a face is cut exactly as ``analyze`` cuts it. A
    photo with several faces gives its largest. ``multi_face`` lists such photos, so the caller can say so.
    ``detector_factory(model)`` makes the detectors (default: :class:`~fer_batch.detect.FaceDetector` at its
    defaults); the CLI passes one that keeps MediaPipe's native start-up lines off the terminal.
    """

    def __init__(self, detector_factory=None):
        self._factory = detector_factory
        self._detector = None  # made on the first photo
        self.multi_face: list[Path] = []

    def crop(self, path: str | Path) -> np.ndarray | None:
        """The (48, 48) uint8 face of the photo at ``path``, or None when no face is found.

        Raises :class:`~fer_batch.errors.InputError` (naming the file) when the image cannot be read.
        """
        from ..crops import align_face
        from ..sources import Source, read_image

        from ..config import AnalyzeConfig

        path = Path(path)
        rgb = read_image(Source(path=path, name=str(path), media="image"))
        if self._detector is None:
            model = AnalyzeConfig.detector  # the dataclass's default: analyze's
            if self._factory is None:
                from ..detect import FaceDetector

                self._detector = FaceDetector(model)
            else:
                self._detector = self._factory(model)
        detector = self._detector
        detector.reset()
        dets = detector.detect(rgb)
        if not dets:
            return None
        if len(dets) > 1:
            self.multi_face.append(path)
        largest = max(dets, key=lambda d: d.w * d.h)
        return align_face(rgb, largest)

    def close(self) -> None:
        """Release the detector's MediaPipe graphs. A failure to close is ignored: this runs in ``__exit__``, where
        raising would hide the error that ended the ``with`` block."""
        detector, self._detector = self._detector, None
        if detector is not None:
            try:
                detector.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> PhotoFaceCropper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
