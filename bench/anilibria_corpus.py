"""Synthetic AniLibria-v3-like title lists and realistic mutations of them, for the benchmarks.

Built from what the v3 API returns (titles with names, posters, player episodes, torrents,
team, season), with seeded randomness so every run measures the same documents.
"""

from __future__ import annotations

import copy
import random
from typing import Any

GENRES = [
    "Комедия",
    "Романтика",
    "Школа",
    "Драма",
    "Фэнтези",
    "Приключения",
    "Экшен",
    "Сверхъестественное",
    "Повседневность",
    "Мистика",
    "Детектив",
    "Спорт",
]
VOICES = ["Amikiri", "Silv", "Hekomi", "Lupin", "Dejz", "MyAska", "BStrong", "Gomer"]
WORDS = [
    "Истории",
    "монстров",
    "Твоё",
    "имя",
    "весна",
    "город",
    "тайна",
    "сердце",
    "звезда",
    "дорога",
    "последний",
    "летний",
    "кристалл",
    "ветер",
    "легенда",
]


def _episode(rng: random.Random, title_id: int, number: int) -> dict[str, Any]:
    uuid = (
        f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-{rng.getrandbits(16):04x}-"
        f"{rng.getrandbits(16):04x}-{rng.getrandbits(48):012x}"
    )
    base = f"/videos/media/ts/{title_id}/{number}"
    return {
        "episode": number,
        "name": None if rng.random() < 0.6 else " ".join(rng.sample(WORDS, 3)),
        "uuid": uuid,
        "created_timestamp": 1_650_000_000 + number * 604_800 + rng.randrange(3600),
        "preview": f"/storage/releases/episodes/previews/{title_id}/{number}/{uuid[:12]}.jpg",
        "skips": {"opening": [rng.randrange(60, 120), rng.randrange(150, 210)], "ending": []},
        "hls": {
            "fhd": f"{base}/1080/{uuid}.m3u8",
            "hd": f"{base}/720/{uuid}.m3u8",
            "sd": f"{base}/480/{uuid}.m3u8",
        },
    }


def title(rng: random.Random, title_id: int) -> dict[str, Any]:
    """One v3 title object: 6 to 12 episodes, about 6.6 KB of JSON on average."""
    episodes = rng.randrange(5, 12)
    code = "-".join(
        rng.sample(
            ["kimi", "no", "na", "wa", "shingeki", "kyojin", "sora", "hikari", "yume", "tsuki"], 3
        )
    )
    poster = f"/storage/releases/posters/{title_id}/{rng.getrandbits(64):016x}.jpg"
    return {
        "id": title_id,
        "code": code,
        "names": {
            "ru": " ".join(rng.sample(WORDS, 3)).capitalize(),
            "en": code.replace("-", " ").title(),
            "alternative": None,
        },
        "franchises": [],
        "announce": None if rng.random() < 0.7 else "Новая серия каждую субботу",
        "status": {"string": "В работе", "code": 1},
        "posters": {
            size: {"url": poster, "raw_base64_file": None}
            for size in ("small", "medium", "original")
        },
        "updated": 1_700_000_000 + rng.randrange(10_000_000),
        "last_change": 1_700_000_000 + rng.randrange(10_000_000),
        "type": {
            "full_string": f"ТВ ({episodes} эп.), 24 мин.",
            "code": 1,
            "string": "TV",
            "episodes": episodes,
            "length": 24,
        },
        "genres": sorted(rng.sample(GENRES, 4)),
        "team": {
            "voice": rng.sample(VOICES, 3),
            "translator": ["Inari"],
            "editing": ["Aero"],
            "decor": ["Helge"],
            "timing": ["im4x"],
        },
        "season": {"string": "весна", "code": 2, "year": 2023, "week_day": rng.randrange(7)},
        "description": " ".join(rng.choice(WORDS) for _ in range(60)) + ".",
        "in_favorites": rng.randrange(100, 50_000),
        "rating": round(rng.uniform(6.0, 9.5), 2),
        "blocked": {"blocked": False, "bakanim": False},
        "player": {
            "alternative_player": None,
            "host": "cache.libria.fun",
            "is_rutube": False,
            "episodes": {"first": 1, "last": episodes, "string": f"1-{episodes}"},
            "list": {str(n): _episode(rng, title_id, n) for n in range(1, episodes + 1)},
            "rutube": {},
        },
        "torrents": {
            "episodes": {"first": 1, "last": episodes, "string": f"1-{episodes}"},
            "list": [
                {
                    "torrent_id": title_id * 10 + q,
                    "quality": {"string": s, "type": "WEBRip"},
                    "leechers": rng.randrange(50),
                    "seeders": rng.randrange(500),
                    "downloads": rng.randrange(10_000),
                    "total_size": rng.randrange(10**9, 10**10),
                    "url": f"/public/torrent/download.php?id={title_id * 10 + q}",
                    "uploaded_timestamp": 1_700_000_000 + rng.randrange(10**6),
                    "hash": f"{rng.getrandbits(160):040x}",
                }
                for q, s in enumerate(["WEBRip 1080p", "WEBRip 720p"])
            ],
        },
    }


def title_list(titles: int = 50, seed: int = 1) -> dict[str, Any]:
    """A ``/v3/title/updates``-style page: ``{list: [...], pagination: {...}}``."""
    rng = random.Random(seed)
    return {
        "list": [title(rng, 9000 + i) for i in range(titles)],
        "pagination": {
            "pages": 40,
            "current_page": 1,
            "items_per_page": titles,
            "total_items": 40 * titles,
        },
    }


def mutate(document: dict[str, Any], seed: int = 2) -> dict[str, Any]:
    """What the rewrite answers for the same page: live counters and timestamps moved, genres and
    voice lists and the title order shuffled, ratings off in the third decimal, plus three real
    differences (a changed Russian name, a lost announce field, an id sent as a string)."""
    rng = random.Random(seed)
    out = copy.deepcopy(document)
    for item in out["list"]:
        item["in_favorites"] += rng.randrange(1, 40)
        item["updated"] += rng.randrange(0, 120)
        item["rating"] = round(item["rating"] + rng.choice([-0.004, 0.0, 0.003]), 3)
        rng.shuffle(item["genres"])
        rng.shuffle(item["team"]["voice"])
        for torrent in item["torrents"]["list"]:
            torrent["seeders"] += rng.randrange(5)
    rng.shuffle(out["list"])
    count = len(out["list"])
    out["list"][3 % count]["names"]["ru"] += "!"
    out["list"][7 % count].pop("announce", None)
    out["list"][9 % count]["season"]["year"] = str(out["list"][9 % count]["season"]["year"])
    return out
