"""``--detector auto``: both BlazeFace models, combined so that faces from about 24 px wide to frame-filling are found.

BlazeFace sees a 128 px (short-range) or 192 px (full-range) square whatever the frame, so what it can find depends
on a face's size relative to the picture it is shown: measured on benchmarks/detect_quality.py's scenes, the
short-range model needs a face of about 10% of the longer side, the full-range one about 7%. Three passes cover the
range:

* ``short``: the short-range model on the reduced frame (``--detect-size``), every frame: close faces, cheaply;
* ``full``: the full-range model on the same reduced frame: faces down to ~7% of the longer side;
* ``tiles``: the full-range model on overlapping TILE px squares of the frame (reduced by halving to at most
  TILE_MAX_SIDE): faces down to about 24 px in frames up to 1280 px (48 px in 4K).

The full-range passes cost 2-4x the short one each (the tiles 18 of them at 1280x720), so they run where they can
find something: on the first frame of a source (a "scan": every tile), again SCAN_EVERY analysed frames later, and
then after gaps that double, up to SCAN_MAX frames, while the scans find no small face (a scan that finds one, a new
source and a scene cut start again at SCAN_EVERY); and on the frames after one that showed small faces (under SMALL
of the longer side), for HOLD frames after the last one: then ``full`` and only the tiles that hold those faces, plus
one more tile in turn. A small face that appears beside faces already seen is found when the turn reaches its tile
or at the next scan, at the latest SCAN_MAX frames later (8 s at 30 frames/s), SCAN_EVERY in a shot with small faces.
Photos are sources of one frame: always scanned. A scan of a 1280x720 frame costs about 150 ms on a 2-core EPYC (18
tiles), so a close-up video scanned every SCAN_EVERY frames paid 2.5 ms a frame for it; with the growing gaps, 0.6
ms a frame over a minute.

Boxes of the passes are merged (the same face seen by several passes, or by overlapping tiles, is one face; the
short-range box is kept where there is one, so boxes do not jump between models from frame to frame). A face is
kept when one pass is sure of it (its own threshold below), or both models agree; a face only the full-range
model saw (whole frame or tiles) must also be confirmed by the short-range model on a crop around it. Thresholds
and checks were chosen on the benchmark's no-face frames (title text, shoulders without heads, textured
backgrounds).

Both BlazeFace models can be sure of a round glyph ("8", "0", "@") in rendered text, and score thresholds chosen on
one set of frames did not hold on the next (2-5 false faces per 1,000 fresh no-face frames). So every face kept by
the rules above also needs a second opinion from a model trained on another task: MediaPipe's face-mesh model
(:mod:`fer_batch.verify`), whose face-presence logit must reach MESH_BAR (MESH_BAR_SMALL for faces under MESH_SMALL
px). In a video it is asked once per face, when the face appears: a face at the place of one it passed in the
last frame is kept without asking again.
"""

from __future__ import annotations

import numpy as np

from .verify import MARGIN as MESH_MARGIN

TILE = 320
TILE_OVERLAP = 112  # faces up to about this wide lie whole inside one tile; larger ones are the whole-frame passes'
TILE_MAX_SIDE = 1280
SCAN_EVERY = 60
SCAN_MAX = 240
HOLD = 15
SMALL = 0.1  # faces narrower than this share of the frame's longer side need the tiles
# A pass's own score threshold, above which its face is kept without another pass agreeing.
SURE = {"short": 0.75, "full": 0.75, "tiles": 0.75}
AGREE = 0.5  # two passes each at least this sure of the same place; so no face is kept below this score
VERIFY = 0.3  # the short-range score on the crop around a face only the tiles saw
# ... and where the tiles were less sure than this, the score the crop must reach: text at 20-30 px scored 0.77 in
# the tiles and 0.50-0.58 on its crop (2 of 1,000 no-face frames), real faces of 24-40 px 0.76-0.86 there.
UNSURE_TILE, VERIFY_UNSURE = 0.8, 0.6
RAW_SHORT = 0.3  # what the short-range graph reports at all (agreement needs its weaker faces too)
MAX_ASPECT = 1.6  # BlazeFace's boxes are square; an unclipped box further from square than this is not a face
# The face-mesh model's presence logit a kept face must reach (fer_batch/verify.py). 0 is MediaPipe's own bar
# (presence 0.5). A face narrower than MESH_SMALL reaches the model upsampled more than 3x, and the model's logit for
# real faces falls with size (benchmark faces of 24-39 px: median 11.8, 5th percentile -2.5; 40-79 px: 19.6 and
# 11.5), so small faces get a lower bar (presence 0.05): chosen on no-face seeds 0-1999 and the benchmark's scenes
# as the bar that keeps 24-39 px recall above 80% (81.8%, from 85.0%).
MESH_BAR, MESH_SMALL, MESH_BAR_SMALL = 0.0, 40, -3.0
#: Everything above, recorded in a run's settings so that ``--resume`` refuses to mix results of two versions.
PARAMETERS = {"tile": TILE, "tile_overlap": TILE_OVERLAP, "tile_max_side": TILE_MAX_SIDE, "scan_every": SCAN_EVERY,
              "scan_max": SCAN_MAX, "hold": HOLD, "small": SMALL, "sure": SURE, "agree": AGREE, "verify": VERIFY,
              "unsure_tile": UNSURE_TILE, "verify_unsure": VERIFY_UNSURE, "raw_short": RAW_SHORT,
              "max_aspect": MAX_ASPECT, "mesh_bar": MESH_BAR, "mesh_small": MESH_SMALL,
              "mesh_bar_small": MESH_BAR_SMALL, "mesh_margin": MESH_MARGIN}


class AutoDetector:
    """The passes and their schedule; made by :class:`~fer_batch.detect.FaceDetector` for ``model="auto"``."""

    def __init__(self, short_model, full_model):
        from .verify import FaceVerifier

        self._short = short_model(RAW_SHORT)
        try:
            self._full = full_model(0.5)
            self._mesh = FaceVerifier()
        except BaseException:
            self._short.close()
            if hasattr(self, "_full"):
                self._full.close()
            raise
        self.reset()
        self.passes_run: dict[str, int] = {"short": 0, "full": 0, "tiles": 0, "verify": 0, "mesh": 0}

    def reset(self) -> None:
        self._frame = 0
        self._next_scan, self._gap = 0, SCAN_EVERY // 2  # the first scan's gap doubles to SCAN_EVERY
        self._hold = 0
        self._small: list = []
        self._meshed: list = []  # boxes of the last frame's faces, all passed by the face-mesh model

    def find(self, frame: np.ndarray, reduced: np.ndarray, scale: float, *, bgr: bool) -> list[tuple]:
        """Faces of ``frame`` as (x, y, w, h, score, keypoints) in its pixels; ``reduced`` is the RGB copy of it
        shrunk by ``scale``."""
        index = self._frame
        scan = index == self._next_scan
        self._frame += 1
        found = [_scaled(f, scale, "short") for f in self._short.find(reduced)]
        self.passes_run["short"] += 1
        if scan or self._hold:
            found += [_scaled(f, scale, "full") for f in self._full.find(reduced)]
            self.passes_run["full"] += 1
            found += self._tiles(frame, bgr, None if scan else self._small)
        faces = [f for f in (self._accept(g, frame, bgr) for g in _groups(found)) if f is not None]
        faces = [f for f in faces if self._face_mesh_agrees(f, frame, bgr)]
        self._meshed = [f[:4] for f in faces]
        limit = SMALL * max(frame.shape[:2])
        small = [f[:4] for f in faces if min(f[2], f[3]) < limit]
        if small:
            self._hold, self._small = HOLD, small
        else:
            self._hold = max(0, self._hold - 1)
        if scan:
            self._gap = SCAN_EVERY if small else min(2 * self._gap, SCAN_MAX)
            self._next_scan = index + self._gap
        return [f[:6] for f in faces]

    def _tiles(self, frame: np.ndarray, bgr: bool, near: list | None) -> list[tuple]:
        """The full-range model on every tile, or with ``near`` (boxes of small faces in the last frames) on the
        tiles that hold them and on one more, in turn, for faces that appear between scans."""
        import cv2

        from .detect import reduce_frame

        image, scale = reduce_frame(frame, TILE_MAX_SIDE)
        h, w = image.shape[:2]
        grid = [(x, y) for y in _starts(h) for x in _starts(w)]
        if near is not None:
            chosen = {grid[self._frame % len(grid)]}
            for fx, fy, fw, fh in near:
                cx, cy = (fx + fw / 2) * scale, (fy + fh / 2) * scale
                # The tile whose centre is nearest the face's holds it whole (tiles overlap by more than it is wide).
                chosen.add(min(grid, key=lambda t: (t[0] + TILE / 2 - cx) ** 2 + (t[1] + TILE / 2 - cy) ** 2))
            grid = sorted(chosen)
        out = []
        for x, y in grid:
            tile = image[y:y + TILE, x:x + TILE]
            tile = cv2.cvtColor(tile, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(tile)
            self.passes_run["tiles"] += 1
            for bx, by, bw, bh, score, kps in self._full.find(tile):
                out.append(_scaled((bx + x, by + y, bw, bh, score, kps + (x, y)), scale, "tiles"))
        return out

    def _accept(self, group: list[tuple], frame: np.ndarray, bgr: bool) -> tuple | None:
        best = {}
        for f in group:
            if f[6] not in best or f[4] > best[f[6]][4]:
                best[f[6]] = f
        sure = [f for kind, f in best.items() if f[4] >= SURE[kind]]
        short = best["short"] if "short" in best and best["short"][4] >= AGREE else None
        # Agreement means both models: the whole-frame and tile passes of the full-range one err alike.
        wide = max((f for kind, f in best.items() if kind != "short"), key=lambda f: f[4], default=None)
        if not sure and not (short and wide and wide[4] >= AGREE):
            return None
        rep = short or best.get("full") or best["tiles"]  # the whole-frame boxes sat closer to the pasted faces
        x, y, w, h = rep[:4]
        fh, fw = frame.shape[:2]
        if not 1 / MAX_ASPECT <= h / max(w, 1e-6) <= MAX_ASPECT or min(w, h) > 1.2 * min(fh, fw):
            return None
        if short is None:  # only the full-range model saw it: the short-range one must confirm it on a crop
            if self._verify(frame, rep, bgr) < (VERIFY if wide[4] >= UNSURE_TILE else VERIFY_UNSURE):
                return None
        score = max(f[4] for f in best.values())
        return (x, y, w, h, score, rep[5], rep[6])

    def _face_mesh_agrees(self, face: tuple, frame: np.ndarray, bgr: bool) -> bool:
        """Whether the face-mesh model sees a face there too. A face at the place of one it passed in the last
        frame is not asked again: in a video each face costs one run when it appears, not one a frame. (Place, not
        size: BlazeFace's box on a face it tracks sometimes doubles for a frame, and the model, shown a crop in
        which the face fills a third, may say no.)"""
        if any(_same_face(face, seen, sizes=None) for seen in self._meshed):
            return True
        self.passes_run["mesh"] += 1
        bar = MESH_BAR if min(face[2], face[3]) >= MESH_SMALL else MESH_BAR_SMALL
        return self._mesh.logit(frame, face[:4], face[5], bgr=bgr) >= bar

    def _verify(self, frame: np.ndarray, face: tuple, bgr: bool) -> float:
        """The short-range model's score for the same face on a crop three times its size around it (0 if absent)."""
        import cv2

        from .track import iou

        x, y, w, h = face[:4]
        side = 3.0 * max(w, h)
        fh, fw = frame.shape[:2]
        x0, y0 = int(max(0, x + w / 2 - side / 2)), int(max(0, y + h / 2 - side / 2))
        x1, y1 = int(min(fw, x + w / 2 + side / 2)), int(min(fh, y + h / 2 + side / 2))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return 0.0
        k = 192.0 / max(x1 - x0, y1 - y0)
        crop = cv2.resize(frame[y0:y1, x0:x1], None, fx=k, fy=k,
                          interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)
        if bgr:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        self.passes_run["verify"] += 1
        best = 0.0
        for cx, cy, cw, ch, score, _ in self._short.find(crop):
            if iou((cx / k + x0, cy / k + y0, cw / k, ch / k), (x, y, w, h)) > 0.3:
                best = max(best, score)
        return best

    def close(self) -> None:
        try:
            self._short.close()
        finally:
            try:
                self._full.close()
            finally:
                self._mesh.close()


def _scaled(f: tuple, scale: float, kind: str) -> tuple:
    x, y, w, h, score, kps = f
    return (x / scale, y / scale, w / scale, h / scale, float(score), (kps / scale).astype(np.float32), kind)


def _starts(n: int) -> list[int]:
    """Tile origins along a side of ``n`` pixels: TILE-long tiles overlapping by at least TILE_OVERLAP."""
    if n <= TILE:
        return [0]
    k = -(-(n - TILE_OVERLAP) // (TILE - TILE_OVERLAP))
    return [round(i * (n - TILE) / (k - 1)) for i in range(k)]


def _same_face(a: tuple, b: tuple, sizes: float | None = 2.0) -> bool:
    """Overlapping boxes of about one size: the centre of each lies inside the other, sizes within ``sizes`` x
    (``None``: any sizes)."""
    ax, ay, aw, ah = a[:4]
    bx, by, bw, bh = b[:4]
    acx, acy, bcx, bcy = ax + aw / 2, ay + ah / 2, bx + bw / 2, by + bh / 2
    return (bx <= acx <= bx + bw and by <= acy <= by + bh and ax <= bcx <= ax + aw and ay <= bcy <= ay + ah
            and (sizes is None or 1 / sizes <= aw / max(bw, 1e-6) <= sizes))


def _groups(found: list[tuple]) -> list[list[tuple]]:
    """Detections of the same face, grouped: each joins the group of the first stronger one it matches."""
    groups: list[list[tuple]] = []
    for f in sorted(found, key=lambda f: -f[4]):
        for g in groups:
            if _same_face(g[0], f):
                g.append(f)
                break
        else:
            groups.append([f])
    return groups
