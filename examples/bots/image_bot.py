"""A bot that posts an image with its description: ``python -m examples.bots.image_bot --demo``.

It draws a small PNG itself (stdlib only: zlib and struct), uploads it with alt text and
posts it. A large upload that Mastodon is still processing (``202 Accepted``) is polled by
``upload_media`` until ready; the post is made once even if its request must be retried.

    MASTODON_TOKEN=... python -m examples.bots.image_bot --instance https://mastodon.example \\
        --text "Today's colour" [--image picture.png --description "what it shows"]
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

from aiomasto import Session, Status

from ._cli import Demo, arguments, demo_instance, fail, session, write_state

__all__ = ["post_image", "square_png"]


def square_png(size: int = 16, rgb: tuple[int, int, int] = (0x2B, 0x90, 0xD9)) -> bytes:
    """A ``size`` x ``size`` PNG of one colour.

    Example: ``Path("blue.png").write_bytes(square_png())``
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    # Each row starts with filter type 0 (none); 8-bit RGB, no interlace.
    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


async def post_image(
    masto: Session,
    text: str,
    image: bytes | Path,
    description: str,
    *,
    poll_interval: float = 1.0,
) -> Status:
    """Upload ``image`` with its ``description`` (alt text) and post it with ``text``.

    Example: ``status = await post_image(masto, "Blue", square_png(), "A blue square")``
    """
    media = await masto.upload_media(
        image,
        description=description,
        # Bytes have no name to guess the type from.
        filename=None if isinstance(image, Path) else "image.png",
        mime_type=None if isinstance(image, Path) else "image/png",
        poll_interval=poll_interval,
    )
    status = await masto.post_status(text, media=[media], visibility="unlisted")
    # Without scheduled_at the answer is a Status; the check keeps mypy and readers sure.
    assert isinstance(status, Status)
    return status


async def _demo(demo: Demo) -> dict[str, object]:
    server = demo.server
    # Processing takes two polls, as a large upload does on a real server.
    server.slow_media(polls=2)
    async with demo.session() as masto:
        status = await post_image(
            masto, "A blue square", square_png(), "A plain blue square", poll_interval=0.05
        )
        print(f"posted status {status.id} with media {[m.id for m in status.media_attachments]}")
        fetched = [await masto.status(i) for i in server.statuses_of(demo.bot)]
    return {
        "statuses": [
            {
                "id": s.id,
                "media": [
                    {"id": m.id, "type": m.type, "description": m.description}
                    for m in s.media_attachments
                ],
            }
            for s in fetched
        ],
        "media_polls": server.count("GET", "/api/v1/media/"),
    }


async def _main() -> None:
    parser = arguments("image_bot", "Post an image with a description.")
    parser.add_argument("--text", default="A blue square", help="the status text")
    parser.add_argument("--image", type=Path, help="the image (default: a blue square it draws)")
    parser.add_argument("--description", default="A plain blue square", help="the alt text")
    args = parser.parse_args()
    if not args.demo:
        async with session(args.instance) as masto:
            image = args.image or square_png()
            status = await post_image(masto, args.text, image, args.description)
        print(f"posted {status.url or status.id}")
        return
    async with demo_instance() as demo:
        state = await _demo(demo)
    write_state(args.state_json, state)
    statuses = state["statuses"]
    assert isinstance(statuses, list)
    print(f"the bot's statuses: {statuses}")
    if len(statuses) != 1 or [m["description"] for m in statuses[0]["media"]] != [
        "A plain blue square"
    ]:
        fail("expected one status with one described image")
    print("OK")


if __name__ == "__main__":
    asyncio.run(_main())
