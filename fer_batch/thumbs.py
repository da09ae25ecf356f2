"""Face thumbnails for the report: a face's most confident crop (upscaled) and the face in its whole frame.

The frames are decoded again from the source after the run: a video is read up to each wanted frame (seeking
when it lies far ahead), a photo is read upright as the analysis read it. JPEG bytes come back, small enough to
inline in an HTML page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CROP_PX = 96  # the crop's side in the report (FER-2013's 48 px, upscaled so the expression can be seen)
FRAME_H = 96  # the whole frame's height in the report
FRAME_W_MAX = 3 * FRAME_H  # and its widest: a 6000x400 panorama had made a card 1,440 px wide
SEEK_AFTER = 250  # frames: a wanted frame further ahead is reached by seeking rather than decoding every frame
QUALITY = 72  # with these sizes a face's two thumbnails weigh ~8 kB: 1,000 sources make a report of tens of MB


def _jpeg(bgr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _crop(bgr: np.ndarray, box: tuple[int, int, int, int]) -> bytes:
    import cv2

    x, y, w, h = box
    side = max(w, h) * 1.2
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(int(round(side)), 1)
    # Edge pixels repeat where the square reaches past the frame (as the analysis crops do).
    pad = max(0, -x0, -y0, x0 + s - bgr.shape[1], y0 + s - bgr.shape[0])
    src = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else bgr
    face = src[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
    return _jpeg(cv2.resize(face, (CROP_PX, CROP_PX), interpolation=cv2.INTER_CUBIC if s < CROP_PX
                            else cv2.INTER_AREA))


def _in_frame(bgr: np.ndarray, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> bytes:
    """The frame at the report's height with the face's box; a frame wider than :data:`FRAME_W_MAX` there (a
    panorama) is cut to a window that wide around the face, so that a card stays inside the page."""
    import cv2

    k = FRAME_H / bgr.shape[0]
    small = cv2.resize(bgr, (max(int(round(bgr.shape[1] * k)), 1), FRAME_H), interpolation=cv2.INTER_AREA)
    x, y, w, h = (int(round(v * k)) for v in box)
    if small.shape[1] > FRAME_W_MAX:
        left = min(max(x + w // 2 - FRAME_W_MAX // 2, 0), small.shape[1] - FRAME_W_MAX)
        small, x = np.ascontiguousarray(small[:, left:left + FRAME_W_MAX]), x - left
    cv2.rectangle(small, (x - 1, y - 1), (x + w + 1, y + h + 1), (255, 255, 255), 4)  # a light rim: visible on
    cv2.rectangle(small, (x, y), (x + w, y + h), colour, 2)  # any background, in the emotion's colour
    return _jpeg(small)


def _video_frames(path: Path, frames: dict[int, float | None]):
    """(index, BGR pixels) of the wanted frames of a video (index -> its time in the timeline, or None), in order."""
    import cv2

    from .errors import InputError
    from .sources import Source, animation_frames, is_animation, iter_frames, open_video, size_changes
    from .sources.video import MAX_UNDECODABLE_RUN

    source = Source(Path(path), str(path), "video")
    if is_animation(source):  # decoded as the analysis decoded it: by PIL, frame after frame
        decoded = ((index, lambda pixels=pixels: np.ascontiguousarray(pixels()[:, :, ::-1]))
                 for index, _, _, pixels in animation_frames(source))
    elif size_changes(path):  # OpenCV cannot follow the change: decoded as the analysis decoded it, by PyAV
        # Every frame converted on the way (this path has no grab without conversion): a rare kind of video.
        decoded = ((frame.index, lambda bgr=frame.bgr: bgr) for frame in iter_frames(source, bgr=True))
    else:
        decoded = None
    if decoded is not None:
        wanted = set(frames)
        try:
            for index, pixels in decoded:
                if index in wanted:
                    yield index, pixels()
                    wanted.discard(index)
                    if not wanted:
                        return
        except InputError:  # a frame that cannot be decoded: its faces and those after it go without thumbnails
            return
        return

    cap = open_video(path)  # as the analysis opened it: a phone video's frames upright, where its boxes are
    try:
        pos, seek = 0, True
        for target in sorted(frames):
            if seek and target - pos > SEEK_AFTER:
                cap.set(cv2.CAP_PROP_POS_FRAMES, target)
                ok, img = cap.read()
                if ok and _at(cap.get(cv2.CAP_PROP_POS_MSEC), frames[target]):
                    pos = target + 1
                    yield target, img
                    continue
                # OpenCV seeks to a frame number through its time at the average rate: another frame in a video
                # of variable rate (or one whose times the run repaired). Decoded from the start instead, with no
                # more seeks in this video.
                seek = False
                cap.release()
                cap, pos = open_video(path), 0
            # Counted as the analysis counts them: a frame that fails to decode (a damaged stretch) is a frame, so
            # that the frames after it keep their numbers (they came one too early, or not at all, after a gap).
            failed = 0
            while pos < target:
                failed = 0 if cap.grab() else failed + 1
                if failed >= MAX_UNDECODABLE_RUN:
                    return
                pos += 1
            ok, img = cap.read()
            pos += 1
            if not ok:
                return
            yield target, img
    finally:
        cap.release()


def _at(msec: float, time_s: float | None) -> bool:
    """Whether a frame decoded at ``msec`` is the timeline's frame at ``time_s`` (stored to 0.1 ms)."""
    return time_s is not None and np.isfinite(time_s) and abs(msec / 1000.0 - time_s) < 1e-3


def face_thumbnails(path: Path, media: str, wanted: dict[int, tuple], colours: dict[str, tuple[int, int, int]],
                    ) -> dict[int, tuple[bytes, bytes]]:
    """For each face id in ``wanted`` (id -> (frame, box, emotion), or (frame, box, emotion, time_s): a video's
    frame far ahead is then sought and checked by its time, else decoded up to): (crop JPEG, whole-frame JPEG with
    its box in the emotion's colour). Faces whose frame cannot be decoded are left out."""
    if media == "image":
        from .sources import Source, read_image

        rgb = read_image(Source(Path(path), str(path), "image"))
        pixels = {0: np.ascontiguousarray(rgb[:, :, ::-1])}.items()
    elif media == "video":
        pixels = _video_frames(Path(path), {face[0]: (face[3] if len(face) > 3 else None) for face in wanted.values()})
    else:
        from .sources import media_error

        raise media_error("media", media)
    out = {}
    for index, bgr in pixels:
        for fid, (frame, box, emotion, *_) in wanted.items():
            if frame == index:
                out[fid] = (_crop(bgr, box), _in_frame(bgr, box, colours[emotion]))
    return out
