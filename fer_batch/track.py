"""Face ids within a video: boxes are matched from frame to frame so a timeline can follow one person.

Greedy matching on intersection-over-union with where each face is expected to be (its last box moved on at its
recent speed, so faces that cross keep their ids), with a centre-distance fallback for fast motion or sparse sampling:
the distance a face may move between analysed frames grows with the time between them (``--every 10`` leaves
half a second for a head to cross its own width). A track survives ``max_missed`` analysed frames without a match
(a missed detection, a blink of occlusion); a face that stays away longer comes back under a new id, since nothing
here recognises people.

A hard cut between shots ends every track (:class:`SceneCut`, from a ~32 px grayscale thumbnail of each frame), so
no id passes from one person to another across it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Track:
    id: int
    box: tuple[float, float, float, float]
    missed: int = 0
    #: Pixels its centre moved per analysed frame (a running mean; zero until it has been seen twice).
    velocity: tuple[float, float] = (0.0, 0.0)

    def predicted(self) -> tuple[float, float, float, float]:
        """Where the face should be now, moving as it has been: two faces that cross each other's paths are then
        matched to where each is going, not to the box the other one just left."""
        x, y, w, h = self.box
        steps = self.missed + 1
        return (x + self.velocity[0] * steps, y + self.velocity[1] * steps, w, h)

    def moved_to(self, box) -> None:
        x, y, w, h = box
        steps = self.missed + 1
        dx = (x + w / 2 - self.box[0] - self.box[2] / 2) / steps
        dy = (y + h / 2 - self.box[1] - self.box[3] / 2) / steps
        vx, vy = self.velocity
        self.velocity = (VELOCITY_WEIGHT * dx + (1 - VELOCITY_WEIGHT) * vx,
                         VELOCITY_WEIGHT * dy + (1 - VELOCITY_WEIGHT) * vy)
        self.box, self.missed = tuple(box), 0


#: Weight of the latest step in a track's running mean velocity: detections jitter by a few pixels, so one step alone
#: would predict noise.
VELOCITY_WEIGHT = 0.5


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


# How far a face may move between analysed frames, in face widths: REACH at consecutive frames, plus
# REACH_PER_SECOND for each second between them (measured on samples/moving_face.mp4 at --every 10: a face entering
# the frame moves 0.9-1.0 widths in 0.5 s), never more than MAX_REACH. The reach depends on the sampling interval,
# not on how long a track has been missing, so a face that left does not grow a wider net while it is away.
REACH = 1.0
REACH_PER_SECOND = 2.0
MAX_REACH = 2.5


def _centre_affinity(a, b, reach: float = REACH) -> float:
    """1 when centres coincide, 0 when they are ``reach`` face widths apart (scaled by the larger face)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    d = ((ax + aw / 2 - bx - bw / 2) ** 2 + (ay + ah / 2 - by - bh / 2) ** 2) ** 0.5
    size = max(aw, ah, bw, bh, 1.0) * reach
    scale = min(aw * ah, bw * bh) / max(aw * ah, bw * bh, 1e-9)
    return max(0.0, 1.0 - d / size) * (scale**0.5)


# A cut changes the background at once. Faces (and their hair and shoulders: boxes widened HEAD_MARGIN times) are
# masked out, since one face moving fast across a small frame changes as many pixels as a cut; where faces cover
# nearly everything, the whole thumbnail is compared. A cut is a mean change of at least CUT_LEVEL grey levels that
# is also CUT_JUMP times the mean of the previous few frames' (a pan or a light switching on changes the picture over
# several frames). Measured on the clips of tests/group_scenes.py and the tests' 320x240 face tour: the moving group
# changes the background by under 1 level a frame, the tour by up to 4.7 (where a face half out of the frame is not
# detected, so not masked), cuts between two generated shots (low-contrast backgrounds) by 6.1-24.
CUT_LEVEL = 6.0
CUT_JUMP = 4.0
# Right after a cut, a change of CUT_LEVEL is a second cut (a shot of one analysed frame) when it is spread over the
# picture, at least CUT_SPREAD of the cells of a 4x4 grid (those mostly outside the faces) changing by CUT_LEVEL / 2,
# and when no shift of up to SHIFT_REACH thumbnail pixels, in quarter pixels, explains it (a pan or shake into which
# the cut led): compared at its best shift, the picture must still differ by CUT_LEVEL / 2. Measured on thumbnails:
# cuts between generated shots spread over 0.57-1.0 of the cells and differ by 3.7-38 at their best shift; pans of
# 1.0-3.0 thumbnail pixels an analysed frame (with a third as much drift downwards, on the tests' fine texture) by
# 0.7-1.3, where their best whole-pixel shift left 2.5-4.3 (a pan of 1.5 pixels a frame was four shots); the moving
# group changes no cell; a face moving undetected only the cells it crosses. A run of cuts holds at most
# MAX_QUICK_CUTS of these (past that, it is taken as motion that no shift explains, a fast zoom, rather than a montage
# of more one-frame shots). The search costs 60-75 ms on a 2-core AMD EPYC (Zen 1), and runs only on a frame right
# after a cut that changes by a cut's size all over.
CUT_SPREAD = 0.5
SHIFT_REACH = 3
_SUBPIXEL = 4
MAX_QUICK_CUTS = 3
_GRID = 4
HEAD_MARGIN = 2.0


def _spread(diff: np.ndarray, keep: np.ndarray) -> float:
    """The share of the grid's cells (those at least a fifth kept) whose kept pixels changed by CUT_LEVEL / 2."""
    changed = counted = 0
    for rows in np.array_split(np.arange(diff.shape[0]), _GRID):
        for cols in np.array_split(np.arange(diff.shape[1]), _GRID):
            cell, kept = diff[np.ix_(rows, cols)], keep[np.ix_(rows, cols)]
            if kept.size and kept.mean() >= 0.2:
                counted += 1
                changed += cell[kept].mean() >= CUT_LEVEL / 2
    return changed / counted if counted else 0.0


def _unexplained(thumb: np.ndarray, last: np.ndarray, mask: np.ndarray, last_mask: np.ndarray) -> float:
    """The mean change between two thumbnails at the shift of up to SHIFT_REACH pixels, in steps of 1 / _SUBPIXEL,
    that explains most of it (both enlarged _SUBPIXEL times, bicubic, and compared at every whole shift): a pan of
    1.5 thumbnail pixels a frame differs from its best whole-pixel shift by as much as a cut."""
    import cv2

    h, w = thumb.shape
    size = (w * _SUBPIXEL, h * _SUBPIXEL)
    now_big, last_big = (cv2.resize(t, size, interpolation=cv2.INTER_CUBIC) for t in (thumb, last))
    mask_big, last_mask_big = (cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
                               for m in (mask, last_mask))
    h, w = now_big.shape

    def change(dx: int, dy: int) -> float:
        now = slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx))
        before = slice(max(0, -dy), h + min(0, -dy)), slice(max(0, -dx), w + min(0, -dx))
        diff = np.abs(now_big[now] - last_big[before])
        keep = mask_big[now] * last_mask_big[before]
        kept = keep.sum()
        return float((diff * keep).sum() / kept if kept >= 0.2 * keep.size else diff.mean())

    reach = SHIFT_REACH * _SUBPIXEL  # every shift, not coarse to fine: a fine texture looks alike a pixel away
    return min(change(dx, dy) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1))


class SceneCut:
    """Tells a hard cut from motion by comparing each frame's small grayscale thumbnail with the previous one's."""

    def __init__(self, history: int = 3):
        self._last: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._recent: list[float] = []
        self._history = history
        self._after_cut = False
        self._quick_cuts = 0  # cuts in a row told by the one-frame-shot rule

    def is_cut(self, thumbnail: np.ndarray, boxes=(), scale: float = 1.0) -> bool:
        """``boxes`` (x, y, w, h) are this frame's faces in frame pixels, ``scale`` thumbnail pixels per frame pixel."""
        thumb = np.asarray(thumbnail, np.float32)
        mask = np.ones(thumb.shape, bool)
        for x, y, w, h in boxes:
            cx, cy, r = (x + w / 2) * scale, (y + h / 2) * scale, HEAD_MARGIN * max(w, h) * scale / 2
            mask[max(0, int(cy - r)):max(0, int(cy + 1.5 * r) + 1), max(0, int(cx - r)):max(0, int(cx + r) + 1)] = False
        last, last_mask = self._last, self._mask
        self._last, self._mask = thumb, mask
        if last is None or last.shape != thumb.shape:
            self._recent, self._after_cut, self._quick_cuts = [], False, 0
            return False
        keep = mask & last_mask
        if keep.mean() < 0.2:
            keep = np.ones(thumb.shape, bool)
        diff = np.abs(thumb - last)
        change = float(diff[keep].mean())
        before = sum(self._recent) / len(self._recent) if self._recent else 0.0
        cut = change >= CUT_LEVEL and change >= CUT_JUMP * before
        quick = (self._after_cut and not cut and change >= CUT_LEVEL and self._quick_cuts < MAX_QUICK_CUTS
                 and _spread(diff, keep) >= CUT_SPREAD and _unexplained(thumb, last, mask, last_mask) >= CUT_LEVEL / 2)
        if quick:
            # A shot of one analysed frame: the last frame was a cut's first, and the picture changes again, all
            # over, and not by moving. Against the cut's own jump it is no jump, so without this it passed as motion
            # and an id went on into the next shot; a face or object moving undetected changes a part of the picture.
            cut = True
        self._quick_cuts = self._quick_cuts + quick if cut else 0  # a run of cuts ends at a frame that is not one
        if self._after_cut and (cut or change < CUT_LEVEL):
            # The new shot holds still or is cut again, so the cut's jump was an edit, not motion: left among the
            # recent changes, it hid the next cut of a fast edit (which had to be four times larger than a cut).
            self._recent = self._recent[:-1]
        self._recent = (self._recent + [change])[-self._history:]
        self._after_cut = cut
        return cut


class FaceTracker:
    """Assigns stable integer ids (0, 1, 2, ... per video) to face boxes across consecutive analysed frames."""

    def __init__(self, max_missed: int = 5, min_iou: float = 0.1, min_affinity: float = 0.3):
        self.max_missed = max_missed
        self.min_iou = min_iou
        self.min_affinity = min_affinity
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_time: float | None = None
        self._cuts = SceneCut()
        self.cut = False  # whether the last update() saw a scene cut

    def update(self, boxes, time_s: float | None = None, thumbnail: np.ndarray | None = None,
               thumbnail_scale: float = 1.0) -> list[int]:
        """Ids for this frame's boxes (x, y, w, h), in the order given. ``time_s``, the frame's time in the video,
        lets a face move further between frames that lie further apart. ``thumbnail``, a small grayscale copy of
        the frame (:attr:`fer_batch.detect.FaceDetector.thumbnail`, ``thumbnail_scale`` of its pixels to one of the
        frame's), lets a scene cut end every track."""
        self.cut = thumbnail is not None and self._cuts.is_cut(thumbnail, boxes, thumbnail_scale)
        if self.cut:
            self._tracks = []
        reach = REACH
        if time_s is not None and self._last_time is not None:
            reach = min(MAX_REACH, REACH + REACH_PER_SECOND * max(0.0, time_s - self._last_time))
        if time_s is not None:
            self._last_time = time_s
        pairs = []
        for ti, track in enumerate(self._tracks):
            expected = track.predicted()
            for bi, box in enumerate(boxes):
                overlap = iou(expected, box)
                if overlap >= self.min_iou:
                    score = 1.0 + overlap  # every overlap outranks every centre match
                else:
                    aff = _centre_affinity(expected, box, reach)
                    # A centre match only takes what overlaps left: with a wide reach, a face whose own detection
                    # was missed must not take its neighbour's id.
                    score = aff if aff >= self.min_affinity else 0.0
                if score > 0:
                    pairs.append((score, ti, bi))
        pairs.sort(reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        used_tracks: set[int] = set()
        for score, ti, bi in pairs:
            if ti in used_tracks or ids[bi] is not None:
                continue
            used_tracks.add(ti)
            track = self._tracks[ti]
            track.moved_to(boxes[bi])
            ids[bi] = track.id
        for ti, track in enumerate(self._tracks):
            if ti not in used_tracks:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for bi, box in enumerate(boxes):
            if ids[bi] is None:
                ids[bi] = self._next_id
                self._tracks.append(_Track(self._next_id, tuple(box)))
                self._next_id += 1
        return ids  # type: ignore[return-value]
