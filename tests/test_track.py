from fer_batch.track import FaceTracker, iou


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
