#!/usr/bin/python3
"""Writes "A walk", a text movie made here (deterministic: the same file every run), in Nutella's
format: frames of text separated by a line `end`, to be played at 5 frames a second by
`btvod watch` (or any Nutella player). A figure walks across a landscape of hills, trees and a
sun while day turns to night; every frame carries its number and time in the bottom line.

Usage: scripts/make_ascii_movie.py [--minutes 3] [--fps 5] [-o nutella-walk-movie.txt]
"""

import argparse
import math

WIDTH, HEIGHT = 60, 14

WALKER = [  # two steps of a walk cycle, 3 lines each
    [" o ", "/|\\", "/ \\"],
    [" o ", "/|\\", " | "],
    [" o ", "/|\\", "| |"],
    [" o ", "/|\\", " | "],
]


def sky(frame, total):
    """The sun goes down over the movie; then the moon and stars come out."""
    rows = [[" "] * WIDTH for _ in range(HEIGHT)]
    t = frame / max(1, total - 1)
    if t < 0.6:
        x = int(5 + t / 0.6 * (WIDTH - 12))
        y = int(1 + 5 * math.sin(math.pi * t / 0.6 * 0.5))
        for dx, ch in enumerate("\\|/"):
            rows[y][x + dx] = ch
        rows[y + 1][x:x + 3] = list("-O-")
        rows[y + 2][x:x + 3] = list("/|\\")
    else:
        for i in range(12):
            sx = (i * 37 + 11) % WIDTH
            sy = (i * 17 + 3) % 5
            rows[sy][sx] = "*" if (frame + i) % 7 else "."
        rows[1][WIDTH - 8:WIDTH - 5] = list("(  ")
    return rows


def land(rows, scroll):
    """Hills and trees that scroll by as the walker advances."""
    for x in range(WIDTH):
        h = int(2 + 1.5 * math.sin((x + scroll) / 7.0) + math.sin((x + scroll) / 3.1))
        for y in range(HEIGHT - 2 - h, HEIGHT - 2):
            rows[y][x] = "^" if y == HEIGHT - 2 - h else "."
        if (x + scroll) % 23 == 0:
            top = HEIGHT - 3 - h
            if top >= 2:
                rows[top][x] = "|"
                rows[top - 1][max(0, x - 1):x + 2] = list("/\\ ")[: len(rows[top - 1][max(0, x - 1):x + 2])]
    return rows


def frame_text(n, total, fps):
    rows = land(sky(n, total), n)
    x = 10 + (n // 2) % 6
    pose = WALKER[n % len(WALKER)]
    base = HEIGHT - 6
    for dy, part in enumerate(pose):
        rows[base + dy][x:x + 3] = list(part)
    seconds = n / fps
    rows[HEIGHT - 1] = list(f" frame {n:05d}   t={seconds:6.1f}s   A walk, made by btvod".ljust(WIDTH))
    return "\n".join("".join(r).rstrip() for r in rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--fps", type=int, default=5)
    p.add_argument("-o", "--output", default="nutella-walk-movie.txt")
    a = p.parse_args()
    if a.minutes <= 0 or not 1 <= a.fps <= 10:
        p.error("--minutes must be positive and --fps 1 to 10")
    total = int(a.minutes * 60 * a.fps)
    with open(a.output, "w", encoding="ascii") as f:
        for n in range(total):
            f.write(frame_text(n, total, a.fps) + "\nend\n")
    print(f"wrote {a.output}: {total} frames, {a.minutes:g} min at {a.fps} fps")


if __name__ == "__main__":
    main()
