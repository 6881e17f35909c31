"""Embedded KTH: synthetic human-action videos in the release's folder and file layout.

A stick figure (head, torso, two-segment arms and legs) performs the six KTH actions:
boxing, hand clapping and hand waving move the arms in place; walking, jogging and running
cross the scene at three speeds with matching gait frequency and stride (turning at the
borders). 25 persons differ in size, clothing grey levels, gait phase and speed; the four
scenarios follow KTH: d1 outdoors, d2 outdoors with camera zoom, d3 outdoors in different
clothes, d4 indoors. Frames are 120x160 grey saved as RGB JPEGs:
`kth/<action>/personXX_<action>_dY_uncomp/image_NNNN.jpg`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stcbench.data.kth import ACTIONS, PERSONS, TEST_PERSONS
from stcbench.data.resize import bilinear_float

from .ranges import Allowed

HEIGHT, WIDTH = 120, 160
SCENARIOS = ("d1", "d2", "d3", "d4")
GAIT = {  # speed (in body heights per frame), frames per stride cycle, leg swing (rad), lean (rad)
    "walking": (0.022, 16, 0.45, 0.05),
    "jogging": (0.045, 12, 0.65, 0.15),
    "running": (0.075, 9, 0.85, 0.25),
}


@dataclass
class KTHParams:
    persons: int = 25
    frames_per_video: int = 52
    scenarios_per_person: int = 1     # 1: one scenario per (person, action), rotating d1-d4; 4: all
    jpeg_quality: int = 90


PRESETS = {"small": {}, "medium": {"frames_per_video": 100, "scenarios_per_person": 4}}
WINDOW_FRAMES = 30                 # kth windows (10 -> 20); kth40 tests on 50
RANGES = {
    "persons": Allowed(TEST_PERSONS.start, PERSONS.stop - 1,
                       f"persons 01-{TEST_PERSONS.start - 1:02d} train and validate, the rest are the test split"),
    "frames_per_video": Allowed(WINDOW_FRAMES, None, f"kth windows are {WINDOW_FRAMES} frames, kth40 test "
                                                     f"windows 50"),
    "scenarios_per_person": Allowed(1, len(SCENARIOS), "scenarios d1-d4 filmed per person and action"),
    "jpeg_quality": Allowed(1, 100, "JPEG quality of the frames"),
}


def param_ranges(params: KTHParams) -> dict[str, Allowed]:
    return RANGES


@dataclass
class Person:
    height: float
    shirt: int
    trousers: int
    skin: int
    phase: float
    tempo: float


def make_person(seed: int, person: int) -> Person:
    rng = np.random.default_rng([seed, 21, person])
    dark = rng.random() < 0.5
    return Person(height=float(rng.uniform(58, 82)),
                  shirt=int(rng.integers(25, 80) if dark else rng.integers(150, 215)),
                  trousers=int(rng.integers(20, 90)),
                  skin=int(rng.integers(140, 200)),
                  phase=float(rng.uniform(0, 2 * math.pi)),
                  tempo=float(rng.uniform(0.85, 1.15)))


def background(scenario: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Static scene (outdoor gradient with soft texture, or indoor wall and floor) and its level."""
    rows = np.linspace(0, 1, HEIGHT)[:, None]
    if scenario == "d4":
        level = rng.uniform(160, 200)
        image = np.full((HEIGHT, WIDTH), level) - 25.0 * (rows > 0.78)
    else:
        level = rng.uniform(95, 165)
        image = level + 25.0 * (rows - 0.5) + np.zeros((1, WIDTH))
    texture = bilinear_float(rng.normal(0, 8, (HEIGHT // 8, WIDTH // 8)), HEIGHT, WIDTH)
    return np.clip(image + texture, 0, 255), float(level)


def contrasting(grey: int, level: float, minimum: float = 60.0) -> int:
    """`grey`, pushed away from the background level so the figure stays visible."""
    if abs(grey - level) >= minimum:
        return int(grey)
    return int(level - 90 if level > 128 else level + 80)


def segment(start: tuple[float, float], angle: float, length: float) -> tuple[float, float]:
    """End point of a limb segment; angle 0 points down, positive angles towards +x."""
    return start[0] + length * math.sin(angle), start[1] + length * math.cos(angle)


def pose(action: str, t: int, person: Person) -> dict:
    """Joint angles (shoulder, elbow per arm; hip, knee per leg) and body lean for frame t."""
    def cycle(frames_per_cycle: float) -> float:
        return 2 * math.pi * t * person.tempo / frames_per_cycle + person.phase

    arms = [(0.15, 0.2), (-0.15, -0.2)]
    legs = [(0.05, 0.0), (-0.05, 0.0)]
    lean = 0.0
    if action == "boxing":
        s = math.sin(cycle(10))
        punch = [max(s, 0.0), max(-s, 0.0)]
        arms = [(1.2 + 0.35 * p, 1.9 * (1 - p)) for p in punch]
    elif action == "handclapping":
        c = 0.5 + 0.5 * math.sin(cycle(8))
        arms = [(0.9 + 0.5 * c, 0.6 + 0.9 * c), (-(0.9 + 0.5 * c), -(0.6 + 0.9 * c))]
    elif action == "handwaving":
        w = math.sin(cycle(12))
        arms = [(2.4 + 0.45 * w, 0.3 * w), (-(2.4 + 0.45 * w), -0.3 * w)]
    else:
        _, frames_per_cycle, swing, lean = GAIT[action]
        s = math.sin(cycle(frames_per_cycle))
        bend = 0.6 * swing
        legs = [(swing * s, -bend * max(-s, 0.0)), (-swing * s, -bend * max(s, 0.0))]
        arms = [(-0.8 * swing * s, 0.6 + bend), (0.8 * swing * s, 0.6 + bend)]
    return {"arms": arms, "legs": legs, "lean": lean}


def draw_figure(image: Image.Image, x: float, ground: float, scale: float, facing: int,
                action: str, t: int, person: Person) -> None:
    h = person.height * scale
    angles = pose(action, t, person)
    draw = ImageDraw.Draw(image)
    limb = max(2, round(0.055 * h))
    bob = 0.015 * h * abs(math.sin(2 * math.pi * t / 8)) if action in GAIT else 0.0
    hip = (x, ground - 0.48 * h - bob)
    lean = angles["lean"] * facing
    neck = segment(hip, math.pi + lean, 0.32 * h)
    for (hip_angle, knee_angle), grey in zip(angles["legs"], (person.trousers, min(person.trousers + 15, 255))):
        knee = segment(hip, facing * hip_angle, 0.25 * h)
        foot = segment(knee, facing * (hip_angle + knee_angle), 0.24 * h)
        draw.line([hip, knee, foot], fill=int(grey), width=limb + 1, joint="curve")
    draw.line([hip, neck], fill=person.shirt, width=round(0.13 * h))
    for (shoulder_angle, elbow_angle), grey in zip(angles["arms"], (person.shirt, person.shirt)):
        elbow = segment(neck, facing * shoulder_angle, 0.16 * h)
        hand = segment(elbow, facing * (shoulder_angle + elbow_angle), 0.15 * h)
        draw.line([neck, elbow, hand], fill=int(grey), width=limb, joint="curve")
        radius = 0.025 * h
        draw.ellipse([hand[0] - radius, hand[1] - radius, hand[0] + radius, hand[1] + radius],
                     fill=person.skin)
    head = segment(neck, math.pi + lean, 0.09 * h)
    r = 0.075 * h
    draw.ellipse([head[0] - r, head[1] - r, head[0] + r, head[1] + r], fill=person.skin)


def render_video(action: str, person_id: int, scenario: str, frames: int, seed: int):
    """Yield the uint8 [120, 160] frames of one video."""
    person = make_person(seed, person_id)
    rng = np.random.default_rng([seed, 22, person_id, ACTIONS.index(action), SCENARIOS.index(scenario)])
    scene, level = background(scenario, rng)
    shirt = 255 - person.shirt if scenario == "d3" else person.shirt
    person = dataclasses.replace(person, shirt=contrasting(shirt, level),
                                 trousers=contrasting(person.trousers, level),
                                 skin=contrasting(person.skin, level, 45.0))
    facing = 1 if rng.random() < 0.5 else -1
    ground = HEIGHT - rng.uniform(8, 16)
    x = rng.uniform(0.3, 0.7) * WIDTH
    noise_bank = rng.normal(0, 3.0, (4, HEIGHT, WIDTH))
    for t in range(frames):
        scale = 1.0 + 0.2 * math.sin(2 * math.pi * t / 40) if scenario == "d2" else 1.0
        if action in GAIT:
            x += facing * GAIT[action][0] * person.height * person.tempo
            margin = 0.2 * person.height
            if not margin <= x <= WIDTH - margin:
                x = min(max(x, margin), WIDTH - margin)
                facing = -facing
        image = Image.fromarray(scene.astype(np.uint8), mode="L")
        draw_figure(image, x, ground, scale, facing, action, t, person)
        pixels = np.asarray(image, dtype=np.float64) + noise_bank[t % len(noise_bank)]
        yield np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def scenarios_for(person_id: int, action: str, params: KTHParams) -> list[str]:
    if params.scenarios_per_person >= len(SCENARIOS):
        return list(SCENARIOS)
    first = (person_id + ACTIONS.index(action)) % len(SCENARIOS)
    return [SCENARIOS[(first + k) % len(SCENARIOS)] for k in range(max(1, params.scenarios_per_person))]


def write(folder: Path, params: KTHParams, seed: int) -> dict:
    if not 1 <= params.persons <= 25 or params.frames_per_video < 2:
        raise ValueError("KTH generation needs 1 <= persons <= 25 and frames_per_video >= 2")
    videos = 0
    for action in ACTIONS:
        for person_id in range(1, params.persons + 1):
            for scenario in scenarios_for(person_id, action, params):
                video_dir = folder / action / f"person{person_id:02d}_{action}_{scenario}_uncomp"
                video_dir.mkdir(parents=True)
                for t, frame in enumerate(render_video(action, person_id, scenario,
                                                       params.frames_per_video, seed), start=1):
                    Image.fromarray(frame, mode="L").convert("RGB").save(
                        video_dir / f"image_{t:04d}.jpg", quality=params.jpeg_quality)
                videos += 1
    return {"videos": videos, "frames_per_video": params.frames_per_video,
            "persons": params.persons, "frame_size": [HEIGHT, WIDTH]}
