"""Command-line options for emotion, liveliness and face parameters, shared by `say` and `animate`,
and the same options given as values by name (`style_from_values`, for the viewer's panel)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import click

from .errors import TalkfaceError, shown
from .post import (
    PARAMETERS,
    EmotionSettings,
    FaceParams,
    LifeConfig,
    Style,
    load_track,
    parse_assignments,
    parse_emotions,
)

_OPTIONS = [
    click.option(
        "--emotion",
        default="auto",
        show_default=True,
        help="'auto' (from the text, scaled by the voice's arousal), 'neutral', or weights such as "
        "'joy=0.7,sadness=0.2' for the whole clip.",
    ),
    click.option(
        "--emotion-track",
        type=click.Path(dir_okay=False),
        help='Emotion keyframes over time: a JSON list of {"time": s, "emotions": {"joy": 0.8}}.',
    ),
    click.option("--emotion-strength", type=float, default=1.0, show_default=True, help="Scales the emotion, 0–1."),
    click.option(
        "--emotion-contrast", type=float, default=1.0, show_default=True, help="Spreads emotion weights, 0.3–3."
    ),
    click.option("--max-emotions", type=int, default=3, show_default=True, help="Most emotions on at once, 1–10."),
    click.option("--preferred-emotion", help="A base emotion mixed in, e.g. 'joy=1'."),
    click.option(
        "--preferred-strength", type=float, default=0.5, show_default=True, help="Share of the preferred emotion, 0–1."
    ),
    click.option(
        "--emotion-transition",
        type=float,
        default=0.3,
        show_default=True,
        help="Seconds over which emotion changes settle, 0–10.",
    ),
    click.option(
        "--face",
        "face_specs",
        multiple=True,
        metavar="NAME=VALUE,...",
        help="Face parameters: " + ", ".join(PARAMETERS) + ".",
    ),
    click.option("--multiply", multiple=True, metavar="CHANNEL=K,...", help="Scale channels, e.g. jawOpen=1.2."),
    click.option("--offset", multiple=True, metavar="CHANNEL=X,...", help="Shift channels, e.g. browInnerUp=0.1."),
    click.option("--no-blink", is_flag=True, help="No blinks."),
    click.option("--no-gaze", is_flag=True, help="No eye movement."),
    click.option("--no-head", is_flag=True, help="No head motion."),
    click.option("--no-breathing", is_flag=True, help="No breaths in pauses."),
    click.option(
        "--blink-rate",
        type=float,
        default=10.0,
        show_default=True,
        help="Blinks per minute before those at phrase ends and gaze shifts, 2–60.",
    ),
    click.option("--head-strength", type=float, default=1.0, show_default=True, help="Scales head motion, 0–3."),
    click.option(
        "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed of blinks, gaze and head."
    ),
]


@contextlib.contextmanager
def option_values() -> Iterator[None]:
    """Checking option values: a TalkfaceError raised inside becomes click's usage error (exit 2),
    the same as a value click itself rejects (``--fps 0``), whichever layer finds it."""
    try:
        yield
    except TalkfaceError as e:
        raise click.UsageError(str(e)) from None


def style_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the style options to a click command; they arrive as keyword arguments for `style_from`."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def style_from(
    emotion: str,
    emotion_track: str | None,
    emotion_strength: float,
    emotion_contrast: float,
    max_emotions: int,
    preferred_emotion: str | None,
    preferred_strength: float,
    emotion_transition: float,
    face_specs: tuple[str, ...],
    multiply: tuple[str, ...],
    offset: tuple[str, ...],
    no_blink: bool,
    no_gaze: bool,
    no_head: bool,
    no_breathing: bool,
    blink_rate: float,
    head_strength: float,
    seed: int,
) -> Style:
    """The `Style` the options ask for. A bad option value is a usage error (`option_values`); an
    emotion track file that cannot be read or is malformed, a TalkfaceError."""
    chosen = emotion.strip().lower()
    if emotion_track is not None and chosen != "auto":
        raise click.UsageError("give either --emotion or --emotion-track, not both")
    with option_values():
        settings = EmotionSettings(
            contrast=emotion_contrast,
            max_emotions=max_emotions,
            preferred=parse_emotions(preferred_emotion) if preferred_emotion else None,
            preferred_strength=preferred_strength,
            strength=emotion_strength,
            transition=emotion_transition,
        )
        face_values: dict[str, float] = {}
        for spec in face_specs:
            face_values.update(parse_assignments(spec, "--face"))
        multipliers: dict[str, float] = {}
        for spec in multiply:
            multipliers.update(parse_assignments(spec, "--multiply"))
        offsets: dict[str, float] = {}
        for spec in offset:
            offsets.update(parse_assignments(spec, "--offset"))
        face = FaceParams.from_mapping(face_values, multipliers, offsets)
        life = LifeConfig(
            blink=not no_blink,
            gaze=not no_gaze,
            head=not no_head,
            breathing=not no_breathing,
            blink_rate=blink_rate,
            head_strength=head_strength,
        )
        style = Style(emotion=chosen, emotion_settings=settings, face=face, life=life, seed=seed)
    return style if emotion_track is None else replace(style, emotion=load_track(emotion_track))


#: The style options as a command of their own, to parse values that come from elsewhere than argv.
_COMMAND = style_options(click.Command("style"))
#: The options `style_from_values` takes, by name without dashes: all but --emotion-track, which reads a file.
_BY_NAME = {p.opts[0][2:]: p for p in _COMMAND.params if isinstance(p, click.Option) and p.name != "emotion_track"}
VALUE_NAMES: tuple[str, ...] = tuple(sorted(_BY_NAME))


def style_from_values(values: Mapping[str, object]) -> Style:
    """The `Style` for option values by name (`Style.from_options`, which the viewer and the server
    use), parsed exactly as on the command line, e.g.
    ``{"emotion": "joy=0.8", "emotion-strength": 0.5, "face": "jawStrength=1.2", "no-blink": True}``.

    Flags take true or false; the others a string or a number (--face, --multiply and --offset
    also a list of them); options left out take their defaults. TalkfaceError for anything bad.
    """
    if not isinstance(values, Mapping):
        raise TalkfaceError(f"style options must be a mapping of option name to value, not {shown(values)}")
    args = []
    for name, value in values.items():
        option = _BY_NAME.get(name)
        if option is None:
            raise TalkfaceError(f"unknown style option {name!r}; known: {', '.join(VALUE_NAMES)}")
        if option.is_flag:
            if not isinstance(value, bool):
                raise TalkfaceError(f"style option {name!r} takes true or false, not {shown(value)}")
            args += [f"--{name}"] if value else []
            continue
        for item in value if option.multiple and isinstance(value, list) else [value]:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise TalkfaceError(f"style option {name!r} takes a string or a number, not {shown(item)}")
            try:
                args.append(f"--{name}={item}")
            except ValueError:  # an int of over 4300 digits, which Python will not turn into text
                raise TalkfaceError(f"style option {name!r}: {shown(item)} is out of range") from None
    try:
        return style_from(**_COMMAND.make_context("style", args).params)
    except click.ClickException as e:
        raise TalkfaceError(e.format_message()) from None
