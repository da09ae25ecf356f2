import numpy as np

from fer_batch.track import FaceTracker, SceneCut, iou


def test_iou_basics():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_two_moving_faces_keep_their_ids_even_when_listed_in_swapped_order():
    tracker = FaceTracker()
    a, b = [100, 100, 50, 50], [400, 120, 60, 60]
    assert tracker.update([a, b]) == [0, 1]
    for step in range(1, 20):
        a2 = [100 + 8 * step, 100, 50, 50]
        b2 = [400 - 5 * step, 120 + 2 * step, 60, 60]
        order = [b2, a2] if step % 2 else [a2, b2]
        ids = tracker.update(order)
        assert ids == ([1, 0] if step % 2 else [0, 1])


def test_brief_miss_keeps_id_but_long_absence_gets_new_id():
    tracker = FaceTracker(max_missed=3)
    box = [50, 50, 40, 40]
    assert tracker.update([box]) == [0]
    for _ in range(3):
        assert tracker.update([]) == []
    assert tracker.update([box]) == [0]  # missed 3 frames: still the same track
    for _ in range(4):
        tracker.update([])
    assert tracker.update([box]) == [1]  # gone longer than max_missed: a new id


def test_fast_motion_without_overlap_matches_by_centre():
    tracker = FaceTracker()
    tracker.update([[100, 100, 80, 80]])
    assert tracker.update([[150, 110, 80, 80]]) == [0]


def test_sparse_sampling_lets_a_face_move_further():
    """Boxes of samples/moving_face.mp4 at --every 10 (20 fps): the face entering from the left moves about one
    face width between frames 110 and 120. Half a second apart that is one face; a frame apart it is not."""
    entering, later = [13, 125, 110, 110], [130, 116, 128, 128]
    sparse = FaceTracker()
    assert sparse.update([entering], 5.5) == [0]
    assert sparse.update([later], 6.0) == [0]
    dense = FaceTracker()
    assert dense.update([entering], 5.5) == [0]
    assert dense.update([later], 5.55) == [1]
    # The reach is capped: a face far across the frame is someone else, however long between frames.
    far = FaceTracker()
    far.update([[0, 100, 100, 100]], 0.0)
    assert far.update([[400, 100, 100, 100]], 10.0) == [1]


def test_a_centre_match_never_takes_an_overlapping_faces_id():
    """Two faces side by side, sampled half a second apart; the left one is missed in the second frame. The right
    face moved left but still overlaps its own old box, so it keeps its id, however wide the reach."""
    for time_s in (None, 0.5, 1.0):
        tracker = FaceTracker()
        assert tracker.update([[0, 100, 100, 100], [150, 100, 100, 100]], 0.0 if time_s else None) == [0, 1]
        assert tracker.update([[90, 100, 100, 100]], time_s) == [1], time_s


def test_two_faces_passing_close_keep_their_ids():
    """Two faces walk towards each other until their boxes are 2 px apart, with a frame where one is missed, and
    back."""
    tracker = FaceTracker()
    for step in list(range(0, 21)) + list(range(20, -1, -1)):
        a = [100 + 7 * step, 200 + step, 60, 60]  # at step 20: x 240..300
        b = [442 - 7 * step, 205, 60, 60]  # at step 20: x 302..362
        boxes = [a, b] if step % 3 else [b, a]
        ids = dict(zip(map(tuple, boxes), tracker.update(boxes, step / 15)))
        assert (ids[tuple(a)], ids[tuple(b)]) == (1, 0)  # b was listed first on the first frame
    assert tracker.update([[100, 200, 60, 60]], 21 / 15) == [1]  # b missed: a keeps its id, b's is not taken


def test_a_scene_cut_ends_every_track_but_motion_does_not():
    yy, xx = np.mgrid[0:18, 0:32]
    shot1 = (128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 4.0)).astype(np.uint8)  # smooth, as a thumbnail is
    shot2 = (128 + 60 * np.cos(xx / 3.0 + 1) * np.sin(yy / 6.0 + 2)).astype(np.uint8)
    tracker = FaceTracker()
    box = [100, 100, 80, 80]
    for i in range(5):  # the picture shifts a pixel a frame (a pan) and a face moves: no cut
        assert tracker.update([box], i / 30, np.roll(shot1, i, axis=1), 0.05) == [0]
        assert not tracker.cut
    assert tracker.update([box], 5 / 30, shot2, 0.05) == [1] and tracker.cut
    assert tracker.update([box], 6 / 30, shot2, 0.05) == [1] and not tracker.cut


def test_scene_cut_ignores_the_faces_themselves():
    """A face jumping across an otherwise still frame changes many pixels, but only where the face is. Unmasked,
    its first jump would read as a cut (the later ones not: the change no longer jumps above the last frames')."""
    background = np.full((24, 64), 90, np.uint8)
    for faces, expected in ((True, False), (False, True)):
        cut = SceneCut()
        for x in range(0, 50, 8):
            frame = background.copy()
            frame[8:16, x:x + 8] = 250  # the face, 8 thumbnail pixels wide
            boxes = [(x * 10, 80, 80, 80)] if faces else []
            assert cut.is_cut(frame, boxes, scale=0.1) == (expected and x == 8)


def test_two_faces_that_cross_keep_their_ids():
    """Two 80-px faces walk through each other at 40 px an analysed frame (sparse sampling of people passing): at
    the crossing each old box overlaps the other face best, so matching the last boxes would swap the ids; matching
    where each face is going keeps them."""
    tracker = FaceTracker()
    for step in range(7):  # at step 2, a at x 80 and b at 120; at step 3, a at 120 and b at 80
        a, b = [40 * step, 100, 80, 80], [200 - 40 * step, 100, 80, 80]
        ids = tracker.update([a, b], step / 3)
        assert ids == [0, 1], (step, ids)


def test_a_face_that_stops_or_turns_back_keeps_its_id():
    tracker = FaceTracker()
    path = [40 * s for s in range(5)] + [160] * 3 + [160 - 30 * s for s in range(1, 5)]
    for step, x in enumerate(path):
        assert tracker.update([[x, 100, 80, 80]], step / 3) == [0], step



def test_cuts_two_analysed_frames_apart_each_end_every_track():
    """Fast edits (shots two analysed frames long: under a second at --every 10). The first cut's jump used to stay
    among the recent changes, so the next cut had to be four times larger than a cut to count, and an id passed to
    the next shot's face."""
    yy, xx = np.mgrid[0:18, 0:32]
    shots = [(128 + 60 * np.sin(xx / p + k) * np.cos(yy / q + 2 * k)).astype(np.uint8)
             for k, (p, q) in enumerate(((5.0, 4.0), (3.0, 6.0), (4.0, 3.0), (6.0, 5.0)))]
    tracker = FaceTracker()
    box = [100, 100, 80, 80]
    frames = [shots[0]] * 4 + [shots[1]] * 2 + [shots[2]] * 2 + [shots[3]] * 3
    ids, cuts = [], []
    for i, frame in enumerate(frames):
        ids.append(tracker.update([box], i / 30, frame, 0.05)[0])
        cuts.append(tracker.cut)
    assert cuts == [False] * 4 + [True, False] * 2 + [True, False, False]
    assert ids == [0] * 4 + [1, 1, 2, 2, 3, 3, 3]


def test_shots_of_one_analysed_frame_each_end_every_track():
    """A music-video edit at --every 10: shots of one analysed frame between cuts. Each cut's jump is no jump
    against the last cut's, so the second and later cuts passed as motion and ids went on into other shots."""
    yy, xx = np.mgrid[0:18, 0:32]
    shots = [(128 + 60 * np.sin(xx / p + k) * np.cos(yy / q + 2 * k)).astype(np.uint8)
             for k, (p, q) in enumerate(((5.0, 4.0), (3.0, 6.0), (4.0, 3.0), (6.0, 5.0), (2.5, 4.5)))]
    tracker = FaceTracker()
    box = [100, 100, 80, 80]
    frames = [shots[0]] * 3 + shots[1:4] + [shots[4]] * 3
    ids, cuts = [], []
    for i, frame in enumerate(frames):
        ids.append(tracker.update([box], i / 3, frame, 0.05)[0])
        cuts.append(tracker.cut)
    assert cuts == [False] * 3 + [True] * 4 + [False] * 2
    assert ids == [0] * 3 + [1, 2, 3, 4, 4, 4]


def test_one_frame_shots_of_generated_scenes_are_cuts_and_a_moving_group_is_not():
    """The same on frames as the detector sees them (thumbnails of generated scenes with faces and text, their
    faces masked by their boxes), and a swaying group right after a cut into it stays one shot."""
    import group_scenes as gs
    from fer_batch.detect import _thumbnail

    def xywh(boxes):
        return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes]

    scenes = [gs.face_scene(seed, size=(854, 480)) for seed in range(4)]
    cut = SceneCut()
    seen = [cut.is_cut(_thumbnail(s.rgb), xywh(s.boxes), 32 / 854) for s in scenes]
    assert seen == [False] + [True] * 3
    clip = gs.group_clip(frames=12, seed=3)
    seen = [cut.is_cut(_thumbnail(f), xywh(b for b in boxes if b), 32 / 854)
            for f, boxes in zip(clip.frames, clip.truth)]
    assert seen == [True] + [False] * 11


def _texture(h: int, w: int, contrast: float = 1.0) -> np.ndarray:
    """A fine grey texture: panned or zoomed, it changes a 32-px thumbnail by more than a cut's CUT_LEVEL."""
    yy, xx = np.mgrid[0:h, 0:w]
    texture = 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0) + 40 * np.sin((xx + yy) / 23.0)
    return (128 + contrast * texture).astype(np.uint8)


def test_a_cut_into_a_panning_shot_is_one_cut():
    """A shot that pans (two thumbnail pixels an analysed frame: 6% of the width) changes all over, every frame,
    by a cut's size; the shift that explains it tells it from a run of one-frame shots, so only the cut ends
    tracks (the rule for one-frame shots, without the shift, cut every frame of the pan). Out of stillness, a pan
    is cut once at most."""
    import cv2

    wide = _texture(180, 320 + 12 * 20, contrast=0.3)
    pan = [cv2.resize(wide[:, i * 20:i * 20 + 320], (32, 18), interpolation=cv2.INTER_AREA) for i in range(12)]
    other = np.full((18, 32), 200, np.uint8)  # a bright title card before the cut
    changes = [np.abs(a.astype(float) - b).mean() for a, b in zip(pan, pan[1:])]
    assert min(changes) > 6.0  # CUT_LEVEL: each step alone would be a cut's size
    cut = SceneCut()
    assert [cut.is_cut(t) for t in [other] * 3 + pan] == [False] * 3 + [True] + [False] * 11
    cut = SceneCut()
    seen = [cut.is_cut(t) for t in [pan[0]] * 3 + pan]
    assert sum(seen) <= 1 and not any(seen[5:]), seen


def test_motion_no_shift_explains_after_a_cut_ends_tracks_at_most_three_more_times():
    """A fast zoom (10% an analysed frame, on a fine texture: no shift explains it) right after a cut reads as
    one-frame shots: MAX_QUICK_CUTS of them, then it is motion."""
    import cv2

    from fer_batch.track import MAX_QUICK_CUTS

    scene = _texture(180, 320)
    other = np.ascontiguousarray(scene[::-1, ::-1])

    def zoomed(f):
        h, w = (int(180 / f), int(320 / f))
        y0, x0 = (180 - h) // 2, (320 - w) // 2
        return cv2.resize(cv2.resize(scene[y0:y0 + h, x0:x0 + w], (320, 180)), (32, 18), interpolation=cv2.INTER_AREA)

    frames = [cv2.resize(other, (32, 18), interpolation=cv2.INTER_AREA)] * 3 + [zoomed(1.1 ** i) for i in range(10)]
    cut = SceneCut()
    seen = [cut.is_cut(t) for t in frames]
    assert seen == [False] * 3 + [True] * (1 + MAX_QUICK_CUTS) + [False] * (9 - MAX_QUICK_CUTS)


def test_a_cut_into_a_pan_by_fractions_of_a_pixel_is_one_cut():
    """Pans of 1.25-2.5 thumbnail pixels an analysed frame, drifting downwards a third as fast: at their best
    whole-pixel shift they differed by as much as a cut, so a pan of 1.5 pixels a frame ended every track four times.
    Compared in quarter pixels, only the cut itself ends them."""
    import cv2

    wide = _texture(260, 900, contrast=0.3)
    other = np.full((18, 32), 200, np.uint8)
    for step in (12.5, 15.0, 17.5, 25.0):  # frame pixels, ten to a thumbnail pixel
        pan = [cv2.resize(cv2.warpAffine(wide, np.float32([[1, 0, -i * step], [0, 1, -i * step / 3]]), (320, 180)),
                          (32, 18), interpolation=cv2.INTER_AREA) for i in range(10)]
        cut = SceneCut()
        assert [cut.is_cut(t) for t in [other] * 3 + pan] == [False] * 3 + [True] + [False] * 9, step
