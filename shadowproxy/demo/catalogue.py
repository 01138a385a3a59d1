"""The demo's catalogue database: about sixty AniLibria v3 releases, generated deterministically.

Both demo backends (:mod:`shadowproxy.demo.backends`) serve this same data, the way a legacy
service and its rewrite read the same database. Each :class:`Title` holds the v3 title document as
the legacy API publishes it, plus the few stored facts the two implementations render differently
(the raw rating, genres in storage order, a Japanese name). Nothing is read from disk or network:
the same seed always yields the same catalogue, byte for byte.

Two long-running shows (``one-piece``, ``detective-conan``) carry hundreds of episodes, so their
documents weigh 100-300 KB: the sizes where gzip and off-loop comparison matter.
"""

# The title table holds one release per line:
# ruff: noqa: E501
from __future__ import annotations

import calendar
import random
import re
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

Document = dict[str, Any]
"""A JSON object as the API serves it."""

_HEX = "0123456789abcdef"
_NOW = 1_727_900_000
"""The catalogue's "today" (early October 2024): fixed, so the data never depends on the clock."""
_WEEK = 7 * 86_400
_PARAGRAPH = "\r\n\r\n"
"""AniLibria descriptions separate paragraphs with CRLF pairs."""
_ALNUM = string.ascii_letters + string.digits

# One title per line reads as the table it is: the formatter leaves these alone.
# fmt: off
# (romaji, Russian, alternative English, Japanese, kind, episodes, minutes, year, season, genres)
# kind: TV, MOVIE, OVA, ONA; season: 1 winter, 2 spring, 3 summer, 4 autumn.
_SEEDS: tuple[tuple[str, str, str | None, str | None, str, int, int, int, int, str], ...] = (
    ("Shingeki no Kyojin", "Атака титанов", "Attack on Titan", "進撃の巨人", "TV", 25, 24, 2013, 2, "Драма,Сёнен,Фэнтези,Экшен,Ужасы"),
    ("Shingeki no Kyojin: Lost Girls", "Атака титанов: Потерянные девушки", None, None, "OVA", 3, 24, 2018, 4, "Драма,Экшен"),
    ("Fullmetal Alchemist: Brotherhood", "Стальной алхимик: Братство", None, None, "TV", 64, 24, 2009, 2, "Драма,Магия,Приключения,Сёнен,Экшен"),
    ("Steins;Gate", "Врата Штейна", None, None, "TV", 24, 24, 2011, 2, "Психологическое,Триллер,Фантастика"),
    ("Death Note", "Тетрадь смерти", None, None, "TV", 37, 23, 2006, 4, "Детектив,Психологическое,Сверхъестественное,Триллер"),
    ("Kimetsu no Yaiba", "Клинок, рассекающий демонов", "Demon Slayer", None, "TV", 26, 24, 2019, 2, "Демоны,Исторический,Сверхъестественное,Сёнен,Экшен"),
    ("Kimetsu no Yaiba: Mugen Ressha-hen", "Клинок, рассекающий демонов: Бесконечный поезд", "Demon Slayer: Mugen Train", None, "MOVIE", 1, 117, 2020, 4, "Демоны,Исторический,Сёнен,Экшен"),
    ("Jujutsu Kaisen", "Магическая битва", None, None, "TV", 24, 24, 2020, 4, "Демоны,Сверхъестественное,Сёнен,Школа,Экшен"),
    ("Jujutsu Kaisen 0", "Магическая битва 0", None, None, "MOVIE", 1, 105, 2021, 4, "Демоны,Сверхъестественное,Сёнен,Экшен"),
    ("Spy x Family", "Семья шпиона", None, None, "TV", 12, 24, 2022, 2, "Комедия,Повседневность,Сёнен,Экшен"),
    ("Chainsaw Man", "Человек-бензопила", None, None, "TV", 12, 24, 2022, 4, "Демоны,Сверхъестественное,Сёнен,Экшен,Ужасы"),
    ("Sousou no Frieren", "Провожающая в последний путь Фрирен", "Frieren: Beyond Journey's End", "葬送のフリーレン", "TV", 28, 24, 2023, 4, "Драма,Магия,Приключения,Фэнтези"),
    ("Kusuriya no Hitorigoto", "Монолог фармацевта", "The Apothecary Diaries", None, "TV", 24, 24, 2023, 4, "Детектив,Драма,Исторический"),
    ("One Punch Man", "Ванпанчмен", None, None, "TV", 12, 24, 2015, 4, "Комедия,Пародия,Сейнен,Супер сила,Экшен"),
    ("Mob Psycho 100", "Моб Психо 100", None, None, "TV", 12, 24, 2016, 3, "Комедия,Сверхъестественное,Экшен"),
    ("Tokyo Ghoul", "Токийский гуль", None, None, "TV", 12, 24, 2014, 3, "Драма,Сейнен,Сверхъестественное,Ужасы"),
    ("Sword Art Online", "Мастера меча онлайн", None, None, "TV", 25, 23, 2012, 3, "Игры,Приключения,Романтика,Фэнтези,Экшен"),
    ("Re:Zero kara Hajimeru Isekai Seikatsu", "Re:Zero. Жизнь с нуля в альтернативном мире", None, None, "TV", 25, 25, 2016, 2, "Драма,Психологическое,Триллер,Фэнтези"),
    ("Kono Subarashii Sekai ni Shukufuku wo!", "Этот замечательный мир!", "KonoSuba", None, "TV", 10, 24, 2016, 1, "Комедия,Магия,Пародия,Приключения,Фэнтези"),
    ("Made in Abyss", "Созданный в Бездне", None, None, "TV", 13, 25, 2017, 3, "Драма,Мистика,Приключения,Фантастика"),
    ("Yakusoku no Neverland", "Обещанный Неверленд", "The Promised Neverland", None, "TV", 12, 23, 2019, 1, "Психологическое,Сёнен,Триллер,Ужасы"),
    ("Vinland Saga", "Сага о Винланде", None, None, "TV", 24, 24, 2019, 3, "Драма,Исторический,Приключения,Сейнен,Экшен"),
    ("Dr. Stone", "Доктор Стоун", None, None, "TV", 24, 24, 2019, 3, "Комедия,Приключения,Сёнен,Фантастика"),
    ("Tensei shitara Slime Datta Ken", "О моём перерождении в слизь", "That Time I Got Reincarnated as a Slime", None, "TV", 24, 24, 2018, 4, "Комедия,Магия,Приключения,Фэнтези"),
    ("Kaguya-sama wa Kokurasetai", "Госпожа Кагуя: в любви как на войне", "Kaguya-sama: Love is War", None, "TV", 12, 25, 2019, 1, "Комедия,Психологическое,Романтика,Школа"),
    ("Horimiya", "Хоримия", None, None, "TV", 13, 23, 2021, 1, "Комедия,Повседневность,Романтика,Школа"),
    ("Bocchi the Rock!", "Одинокий рокер!", None, None, "TV", 12, 23, 2022, 4, "Комедия,Музыка,Повседневность"),
    ("Oshi no Ko", "Звёздное дитя", None, None, "TV", 11, 24, 2023, 2, "Драма,Психологическое,Сверхъестественное"),
    ("Mushoku Tensei: Isekai Ittara Honki Dasu", "Реинкарнация безработного", None, None, "TV", 11, 24, 2021, 1, "Драма,Магия,Приключения,Фэнтези,Этти"),
    ("Kimi no Na wa.", "Твоё имя", "Your Name.", "君の名は。", "MOVIE", 1, 106, 2016, 3, "Драма,Романтика,Сверхъестественное"),
    ("Tenki no Ko", "Дитя погоды", "Weathering with You", None, "MOVIE", 1, 112, 2019, 3, "Драма,Романтика,Фэнтези"),
    ("Suzume no Tojimari", "Судзумэ, закрывающая двери", None, None, "MOVIE", 1, 122, 2022, 4, "Драма,Приключения,Фэнтези"),
    ("Koe no Katachi", "Форма голоса", "A Silent Voice", None, "MOVIE", 1, 130, 2016, 3, "Драма,Романтика,Школа"),
    ("Sen to Chihiro no Kamikakushi", "Унесённые призраками", "Spirited Away", "千と千尋の神隠し", "MOVIE", 1, 125, 2001, 3, "Драма,Приключения,Сверхъестественное"),
    ("Hauru no Ugoku Shiro", "Ходячий замок", "Howl's Moving Castle", None, "MOVIE", 1, 119, 2004, 4, "Драма,Приключения,Романтика,Фэнтези"),
    ("Summertime Render", "Летнее время", None, None, "TV", 25, 24, 2022, 2, "Детектив,Мистика,Сверхъестественное,Триллер"),
    ("Texhnolyze", "Технолайз", None, None, "TV", 22, 24, 2003, 2, "Драма,Киберпанк,Психологическое,Фантастика"),
    ("Cowboy Bebop", "Ковбой Бибоп", None, None, "TV", 26, 24, 1998, 2, "Драма,Приключения,Фантастика,Экшен"),
    ("Shin Seiki Evangelion", "Евангелион", "Neon Genesis Evangelion", None, "TV", 26, 24, 1995, 4, "Драма,Меха,Психологическое,Фантастика"),
    ("Hunter x Hunter (2011)", "Охотник х Охотник", None, None, "TV", 148, 23, 2011, 4, "Приключения,Сёнен,Супер сила,Фэнтези,Экшен"),
    ("Gintama", "Гинтама", None, None, "TV", 201, 24, 2006, 2, "Исторический,Комедия,Пародия,Сёнен,Фантастика"),
    ("One Piece", "Ван-Пис", None, "ワンピース", "TV", 1100, 24, 1999, 4, "Комедия,Приключения,Сёнен,Супер сила,Фэнтези"),
    ("Detective Conan", "Детектив Конан", "Case Closed", None, "TV", 1120, 24, 1996, 1, "Детектив,Комедия,Приключения,Сёнен"),
    ("Bleach: Sennen Kessen-hen", "Блич: Тысячелетняя кровавая война", None, None, "TV", 13, 24, 2022, 4, "Сверхъестественное,Сёнен,Экшен"),
    ("Dungeon Meshi", "Подземелье вкусностей", "Delicious in Dungeon", None, "TV", 24, 24, 2024, 1, "Комедия,Приключения,Фэнтези"),
    ("Kaijuu 8-gou", "Кайдзю номер восемь", "Kaiju No. 8", None, "TV", 12, 24, 2024, 2, "Сёнен,Фантастика,Экшен"),
    ("Ore dake Level Up na Ken", "Поднятие уровня в одиночку", "Solo Leveling", None, "TV", 12, 24, 2024, 1, "Приключения,Фэнтези,Экшен"),
    ("Blue Lock", "Синяя тюрьма: Блю Лок", None, None, "TV", 24, 24, 2022, 4, "Сёнен,Спорт"),
    ("Tokyo Revengers", "Токийские мстители", None, None, "TV", 24, 24, 2021, 2, "Драма,Сёнен,Фантастика,Экшен"),
    ("Aoashi", "Аоаси", None, None, "TV", 24, 24, 2022, 2, "Сейнен,Спорт"),
    ("Date A Live IV", "Рандеву с жизнью 4", None, None, "TV", 12, 24, 2022, 2, "Комедия,Меха,Романтика,Фантастика"),
    ("Koi wa Sekai Seifuku no Ato de", "Любовь после мирового господства", None, None, "TV", 12, 24, 2022, 2, "Комедия,Романтика,Супер сила"),
    ("Nanatsu no Taizai: Kamigami no Gekirin", "Семь смертных грехов: Гнев богов", None, None, "TV", 24, 24, 2019, 4, "Магия,Приключения,Сёнен,Фэнтези,Экшен"),
    ("Bakemonogatari", "Истории монстров", None, None, "TV", 15, 25, 2009, 3, "Вампиры,Мистика,Романтика,Сверхъестественное"),
    ("Kizumonogatari III: Reiketsu-hen", "Истории ран. Часть 3: Холодная кровь", None, None, "MOVIE", 1, 83, 2017, 1, "Вампиры,Детектив,Сверхъестественное,Экшен"),
    ("Violet Evergarden", "Вайолет Эвергарден", None, None, "TV", 13, 24, 2018, 1, "Драма,Повседневность,Фантастика"),
    ("Cyberpunk: Edgerunners", "Киберпанк: Бегущие по краю", None, None, "ONA", 10, 25, 2022, 3, "Драма,Киберпанк,Фантастика,Экшен"),
    ("Pluto", "Плутон", None, None, "ONA", 8, 60, 2023, 4, "Детектив,Драма,Психологическое,Фантастика"),
    ("Devilman: Crybaby", "Человек-дьявол: Плакса", None, None, "ONA", 10, 25, 2018, 1, "Демоны,Драма,Ужасы,Экшен"),
    ("Mahou Shoujo Madoka Magica", "Девочка-волшебница Мадока Магика", None, None, "TV", 12, 24, 2011, 1, "Драма,Магия,Психологическое,Триллер"),
    ("Toradora!", "Торадора!", None, None, "TV", 25, 23, 2008, 4, "Комедия,Романтика,Школа"),
    ("Shigatsu wa Kimi no Uso", "Твоя апрельская ложь", "Your Lie in April", None, "TV", 22, 23, 2014, 4, "Драма,Музыка,Романтика,Школа"),
    ("Natsume Yuujinchou", "Тетрадь дружбы Нацумэ", None, None, "TV", 13, 24, 2008, 3, "Драма,Повседневность,Сверхъестественное"),
    ("Mushishi", "Мастер Муси", None, None, "TV", 26, 24, 2005, 4, "Мистика,Повседневность,Сверхъестественное"),
)
# fmt: on

_FRANCHISES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Атака титанов", ("Shingeki no Kyojin", "Shingeki no Kyojin: Lost Girls")),
    ("Клинок, рассекающий демонов", ("Kimetsu no Yaiba", "Kimetsu no Yaiba: Mugen Ressha-hen")),
    ("Магическая битва", ("Jujutsu Kaisen", "Jujutsu Kaisen 0")),
    ("Истории монстров", ("Bakemonogatari", "Kizumonogatari III: Reiketsu-hen")),
)

_LONG_RUNNERS = {"One Piece": 520, "Detective Conan": 380}
"""Episodes on the player for the two big shows: enough for 100-300 KB documents."""

_KINDS = {"MOVIE": 0, "TV": 1, "OVA": 2, "ONA": 3}
_SEASONS = {1: "зима", 2: "весна", 3: "лето", 4: "осень"}
_VOICE = (
    "Amikiri",
    "Silv",
    "Hekomi",
    "Itashi",
    "Lupin",
    "BStrong",
    "Gomer",
    "MyAska",
    "SlivciS",
    "Dejz",
    "Jam",
    "Kari",
    "Sharon",
    "Anzen",
    "Derenn",
    "Lisitsa",
    "Tora",
    "Kiyoko",
    "Malevich",
)
_TRANSLATOR = ("Sesha_Rim", "Yukigawa", "2R", "Leonor", "Shagrissa", "Inari", "Lunatic", "Oni")
_EDITING = ("Aero", "Sekai", "Nikitos", "Vanilla", "Gizmo")
_DECOR = ("Helge", "Rexy", "Cleo", "Moka")
_TIMING = ("im4x", "Den Sato", "Nidoking", "Kaiden", "Hanako")
_QUALITIES = (
    ("WEBRip 1080p", "WEBRip", "1080p", "h264"),
    ("WEBRip 720p", "WEBRip", "720p", "h264"),
    ("BDRip 1080p", "BDRip", "1080p", "h264"),
    ("BDRip 1080p HEVC", "BDRip", "1080p", "h265"),
)
_PLOTS = (
    "Мир, каким его знали герои, рушится в одно мгновение, и теперь им придётся заново учиться жить.",
    "Обычная школьная жизнь заканчивается, когда в руки главного героя попадает то, что не принадлежит людям.",
    "Старые друзья снова встречаются спустя годы, но каждый хранит тайну, о которой не может рассказать.",
    "Путешествие, начавшееся как поручение, превращается в погоню за правдой о прошлом целого королевства.",
    "В городе, где за каждым углом скрывается опасность, выжить можно лишь доверившись незнакомцу.",
    "Её считали обычной служанкой, пока она не раскрыла отравление при императорском дворе.",
    "Он мечтал стать героем, но судьба дала ему силу, которую нельзя показывать никому.",
    "Команда неудачников получает последний шанс доказать, что достойна большой сцены.",
    "Когда время начинает идти по кругу, каждый прожитый день становится подсказкой.",
    "Юные охотники отправляются туда, откуда не вернулся ни один взрослый.",
)
_ENDINGS = (
    "Сможет ли он защитить тех, кто ему дорог?",
    "Чем обернётся эта встреча, не знает никто.",
    "Ответы ждут в самом конце пути.",
    "Но цена победы может оказаться слишком высокой.",
)
_EPISODE_NAMES = (
    "Начало",
    "Клятва",
    "Ночь перед бурей",
    "Тайна старого дома",
    "Возвращение",
    "Выбор",
    "Последний урок",
    "Голос из прошлого",
    "Сломанный меч",
    "Обещание",
    "Рассвет",
    "Прощание",
)
_ANNOUNCES = (
    "Новая серия каждую среду",
    "Новая серия каждую субботу",
    "Релиз завершен!",
    "Серии выходят по воскресеньям",
    "Озвучка идёт, следите за новостями",
)


@dataclass(frozen=True, slots=True)
class Title:
    """One release: its v3 document as the legacy API publishes it, plus raw stored facts."""

    document: Mapping[str, Any]
    """The v3 title object (``id``, ``code``, ``names``, ... ``torrents``) as the legacy service
    renders it: genres sorted, ``rating`` rounded half-up, no ``names.jp``. Treat as read-only."""
    rating_raw: str
    """The stored rating as a decimal string with up to three places (``"8.465"``)."""
    genres_stored: tuple[str, ...]
    """Genres in the order the database returns them (not always sorted)."""
    name_jp: str | None
    """The Japanese title when the database has one."""

    @property
    def id(self) -> int:
        return int(self.document["id"])

    @property
    def code(self) -> str:
        return str(self.document["code"])


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All titles, newest release id first, with lookups by id and code."""

    titles: tuple[Title, ...]
    by_id: Mapping[int, Title] = field(repr=False)
    by_code: Mapping[str, Title] = field(repr=False)

    @property
    def genres(self) -> list[str]:
        """Every genre in use, sorted (what ``/v3/genres`` lists)."""
        return sorted({g for t in self.titles for g in t.document["genres"]})

    @property
    def years(self) -> list[int]:
        """Every season year in use, ascending (what ``/v3/years`` lists)."""
        return sorted({int(t.document["season"]["year"]) for t in self.titles})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _token(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _uuid1(rng: random.Random) -> str:
    """A time-based UUID like the ones AniLibria's encoder assigns (fixed node id)."""
    time_low = rng.getrandbits(32)
    time_mid = rng.getrandbits(16)
    return str(uuid.UUID(f"{time_low:08x}-{time_mid:04x}-11ec-ae92-0242ac120002"))


def _size_string(size: int) -> str:
    """Sizes the way the legacy PHP helper prints them: two decimals, trailing zeros trimmed."""
    for unit, scale in (("GB", 1_000_000_000), ("MB", 1_000_000)):
        if size >= scale:
            return f"{size / scale:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{size / 1000:.2f}".rstrip("0").rstrip(".") + " KB"


def _full_string(kind: str, episodes: int, minutes: int) -> str:
    if kind == "MOVIE":
        return f"Фильм, {minutes} мин."
    label = "ТВ" if kind == "TV" else kind
    return f"{label} ({episodes} эп.), {minutes} мин."


def _rating(rng: random.Random, index: int) -> str:
    """A stored score. One in sixteen has a third decimal 5 after an even digit (half-up and
    half-even rounding disagree on exactly those); one in thirty-two is a whole number."""
    whole = rng.randint(6, 9)
    if index % 16 == 5:
        return f"{whole}.{rng.randint(0, 9)}{rng.choice('02468')}5"
    if index % 32 == 9:
        return f"{whole}.00"
    return f"{whole}.{rng.randint(0, 99):02d}"


def _episode(rng: random.Random, title_id: int, number: int, created: int, named: bool) -> Document:
    opening = rng.randint(0, 150)
    return {
        "episode": number,
        "name": rng.choice(_EPISODE_NAMES) if named else None,
        "uuid": _uuid1(rng),
        "created_timestamp": created,
        "preview": f"/storage/releases/episodes/previews/{title_id}/{number}/{_token(rng, _ALNUM, 16)}.jpg",
        "skips": {"opening": [opening, opening + 90] if rng.random() < 0.6 else [], "ending": []},
        "hls": {
            quality: f"/videos/media/ts/{title_id}/{number}/{res}/{_token(rng, _HEX, 32)}.m3u8"
            for quality, res in (("fhd", 1080), ("hd", 720), ("sd", 480))
        },
    }


def _torrents(rng: random.Random, title_id: int, first: int, last: int, uploaded: int) -> Document:
    span = "Фильм" if first == last == 1 else f"{first}-{last}"
    items = []
    for quality, kind, resolution, encoder in rng.sample(_QUALITIES, rng.randint(1, 3)):
        torrent_id = rng.randint(9000, 29999)
        digest = _token(rng, _HEX, 40)
        size = rng.randint(300_000_000, 4_000_000_000) * max(1, (last - first + 1) // 12)
        items.append(
            {
                "torrent_id": torrent_id,
                "episodes": {"first": first, "last": last, "string": span},
                "quality": {
                    "string": quality,
                    "type": kind,
                    "resolution": resolution,
                    "encoder": encoder,
                    "lq_audio": None,
                },
                "leechers": rng.randint(0, 12),
                "seeders": rng.randint(0, 300),
                "downloads": rng.randint(100, 90_000),
                "total_size": size,
                "size_string": _size_string(size),
                "url": f"/public/torrent/download.php?id={torrent_id}",
                "magnet": f"magnet:?xt=urn:btih:{digest}&tr=http%3A%2F%2Ftr.libria.fun%3A2710%2Fannounce",
                "uploaded_timestamp": uploaded + rng.randint(0, 86_400),
                "hash": digest,
                "metadata": None,
                "raw_base64_file": None,
            }
        )
    return {"episodes": {"first": first, "last": last, "string": f"{first}-{last}"}, "list": items}


def build_catalogue(seed: int = 2024) -> Catalogue:
    """Generate the catalogue; the same seed always gives the same titles."""
    rng = random.Random(seed)
    ids: dict[str, int] = {}
    next_id = 8000
    for romaji, *_ in _SEEDS:
        next_id += rng.randint(3, 40)
        ids[romaji] = next_id
    franchise_of: dict[str, list[Document]] = {}
    for name, members in _FRANCHISES:
        franchise = {"id": _uuid1(rng), "name": name}
        releases = []
        for ordinal, member in enumerate(members, start=1):
            row = next(s for s in _SEEDS if s[0] == member)
            releases.append(
                {
                    "id": ids[member],
                    "code": _slug(member),
                    "ordinal": ordinal,
                    "names": {"ru": row[1], "en": row[0], "alternative": row[2]},
                }
            )
        for member in members:
            franchise_of[member] = [{"franchise": franchise, "releases": releases}]

    titles = []
    for index, (
        romaji,
        ru,
        alternative,
        jp,
        kind,
        episodes,
        minutes,
        year,
        season,
        genres,
    ) in enumerate(_SEEDS):
        title_id = ids[romaji]
        ongoing = year >= 2023 or romaji in _LONG_RUNNERS
        on_player = _LONG_RUNNERS.get(
            romaji, min(episodes, rng.randint(8, 24)) if ongoing else episodes
        )
        first = 1
        premiere = calendar.timegm((year, 1 + (season - 1) * 3, 1, 18, 0, 0))
        if ongoing:  # a new episode went out within the last few weeks
            updated = _NOW - rng.randint(3_600, 30 * 86_400)
            created = updated - (on_player - 1) * _WEEK
        else:
            created = max(premiere, _NOW - 9 * 365 * 86_400)
            updated = min(created + episodes * _WEEK + rng.randint(0, 700 * 86_400), _NOW - 86_400)
        poster = f"/storage/releases/posters/{title_id}/{_token(rng, _ALNUM, 16)}__{_token(rng, _HEX, 32)}.jpg"
        stored = tuple(sorted(genres.split(",")))
        # Most rows come back sorted; a few were edited by hand and come back in insertion order.
        if index % 16 == 2:
            stored = stored[1:] + stored[:1]
        rating_raw = _rating(rng, index)
        named = rng.random() < 0.3
        document: Document = {
            "id": title_id,
            "code": _slug(romaji),
            "names": {"ru": ru, "en": romaji, "alternative": alternative},
            "franchises": franchise_of.get(romaji, []),
            "announce": None if not ongoing and index % 16 == 7 else rng.choice(_ANNOUNCES),
            "status": {"string": "В работе", "code": 1}
            if ongoing
            else {"string": "Завершен", "code": 2},
            "posters": {
                size: {"url": poster, "raw_base64_file": None}
                for size in ("small", "medium", "original")
            },
            "updated": updated,
            "last_change": min(updated + rng.randint(0, 30_000_000), _NOW),
            "type": {
                "full_string": _full_string(kind, episodes, minutes),
                "code": _KINDS[kind],
                "string": kind,
                "episodes": None if kind == "MOVIE" else episodes,
                "length": minutes,
            },
            "genres": sorted(stored),
            "team": {
                "voice": sorted(rng.sample(_VOICE, rng.randint(2, 5))),
                "translator": sorted(rng.sample(_TRANSLATOR, rng.randint(1, 2))),
                "editing": sorted(rng.sample(_EDITING, rng.randint(0, 1))),
                "decor": sorted(rng.sample(_DECOR, rng.randint(0, 1))),
                "timing": sorted(rng.sample(_TIMING, rng.randint(1, 2))),
            },
            "season": {
                "string": _SEASONS[season],
                "code": season,
                "year": year,
                "week_day": rng.randint(0, 6),
            },
            "description": f"«{ru}» ({romaji}). {rng.choice(_PLOTS)}"
            f"{_PARAGRAPH if index % 3 == 0 else ' '}"
            f"{rng.choice(_PLOTS)} {rng.choice(_ENDINGS)}",
            "in_favorites": rng.randint(200, 40_000) * (5 if romaji in _LONG_RUNNERS else 1),
            "rating": None,  # rendered per service from rating_raw
            "blocked": {"blocked": False, "bakanim": False},
            "player": {
                "alternative_player": None
                if rng.random() < 0.5
                else f"//kodik.info/serial/{rng.randint(10_000, 60_000)}/{_token(rng, _HEX, 32)}/720p",
                "host": "cache.libria.fun",
                "is_rutube": False,
                "episodes": {"first": first, "last": on_player, "string": f"{first}-{on_player}"},
                "list": {
                    str(n): _episode(rng, title_id, n, created + (n - 1) * _WEEK, named)
                    for n in range(first, on_player + 1)
                },
                "rutube": {},
            },
            "torrents": _torrents(rng, title_id, first, on_player, updated),
        }
        document["rating"] = _half_up(rating_raw)
        titles.append(Title(document, rating_raw, stored, jp))
    titles.sort(key=lambda t: t.id, reverse=True)
    return Catalogue(
        titles=tuple(titles),
        by_id={t.id: t for t in titles},
        by_code={t.code: t for t in titles},
    )


def _half_up(raw: str) -> float | int:
    """Round to two places, halves away from zero, as ``Math.round(x * 100) / 100`` does; a whole
    number comes out as an int, as JavaScript's one number type prints it."""
    value = Decimal(raw).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return int(value) if value == value.to_integral_value() else float(value)
