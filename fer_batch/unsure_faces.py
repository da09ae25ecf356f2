"""The faces a model is unsure of: a second, mirrored look at them, and a float re-run of int8's near ties.

Both act only on faces whose two likeliest emotions lie close together, where a small change in the probabilities
can change the class. A face's result depends on no other face of its batch: near ties are re-run one face at a
time, and the second look's ``run`` must keep it so (see ``Classifier._mirror_runner``).
"""

from __future__ import annotations

#: A face whose two likeliest emotions lie closer than this under int8 is run again in float (see
#: :func:`recheck_near_ties`).
NEAR_TIE = 0.01


def near_tie_rows(probs, margin: float = NEAR_TIE):
    """The rows of ``probs`` whose two likeliest emotions lie within ``margin``."""
    import numpy as np

    top2 = np.sort(probs, axis=1)[:, -2:]
    return np.flatnonzero(top2[:, 1] - top2[:, 0] < margin)


def second_look(probs, faces, run, rows):
    """``probs`` with the faces at ``rows`` (those the model is unsure of: see
    :func:`fer_batch.classify.flip_margin`) averaged with the probabilities ``run`` gives their mirror images;
    returns ``probs``, changed in place.

    Flip test-time augmentation for the faces where it can matter: averaging a face with its mirror image changes
    the class of few faces, and nearly all of them are faces whose two likeliest emotions were close. Measured on
    PublicTest for the `fast` of 2026-12-02 (f4, no labels needed): the 12.5% of faces with a margin under 0.1 hold
    70% of the faces whose class full flip TTA changes, and 18% under 0.15 hold 83%.
    """
    import numpy as np

    rows = np.asarray(rows, int)
    if len(rows):
        mirrored = np.ascontiguousarray(np.asarray(faces, np.float32)[rows, :, ::-1])
        probs[rows] = (probs[rows] + np.asarray(run(mirrored), np.float64)) / 2
    return probs


def recheck_near_ties(probs, faces, float_one, rows=None):
    """``probs`` (int8 TFLite's, one row a face) with the near ties (``rows``, by default :func:`near_tie_rows`)
    replaced by the float model's (``float_one``: a one-face float runner); returns ``probs``, changed in place.

    Dynamic int8 moves a probability by up to about 0.03 (the packaged fast on PublicTest), so a face whose two best
    classes are that close can come out as the other class. Measured on a distilled vgg-small (machine C): the 3
    of 235 generated faces whose class int8 changed had int8 margins of 0.0003-0.0076, and with every face under
    0.01 re-run (1.4% of PublicTest), int8 gave the float class on all 3,589 PublicTest faces and all 235 generated
    ones. The cost is a float pass for those faces: float TFLite ran 480 faces/s there against int8's 2,674.
    Each face is re-run alone, so its result still depends on no other face of its batch. How many faces are near
    ties depends on the faces as much as on the model: 1.3% of PublicTest for the `fast` of 2026-12-02 (f4), but
    27% of uniform-noise "faces", on which it classified 1,169-1,211 faces/s against 2,831 on PublicTest faces
    (machine C; ``benchmarks/classify_speed.py`` times real faces for that reason).
    """
    import numpy as np

    for i in near_tie_rows(probs) if rows is None else rows:
        probs[i] = float_one(np.asarray(faces[i:i + 1], np.float32))[0]
    return probs
