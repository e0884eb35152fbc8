"""The built-in demo dataset: generated, deterministic from a seed, and learnable.

How it is made (docs/experiments/demo.md repeats this):
- ``n_tastes`` latent tastes (moods, genres, activities, eras), each with English and Chinese
  title phrases ("深夜emo", "90s rock classics", "周末健身房").
- Singers belong to one taste; each song has a singer, a name built from word lists, and a
  power-law (Zipf) popularity within its taste.
- A playlist picks a taste, a title phrase of that taste (sometimes decorated: "my", a year, an
  emoji), and mostly songs of that taste drawn by popularity, plus a few songs from a related
  taste and a few global hits, so the title reveals the taste and the songs follow it.
- A song's 100-d vector is its taste's centre plus its singer's offset plus noise, so vectors
  reflect the same tastes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Each taste: English phrases | Chinese phrases. Titles are drawn from both.
TASTES = [
    ("late night drive|midnight drive|night drive vibes", "深夜开车|午夜公路|夜晚兜风"),
    ("summer beach|beach party|summer vibes", "夏日海边|海边度假|夏天的风"),
    ("workout|gym motivation|running mix", "周末健身房|健身燃脂|跑步歌单"),
    ("late night sad|sad songs|heartbreak", "深夜emo|失恋歌单|伤感情歌"),
    ("90s rock classics|classic rock|rock anthems", "经典摇滚|90年代摇滚|摇滚不死"),
    ("chill lofi|lofi beats|study beats", "学习专注|lofi 放松|图书馆自习"),
    ("morning coffee|coffee shop|sunday morning", "清晨咖啡|咖啡馆|周日早晨"),
    ("party hits|dance party|club bangers", "派对狂欢|蹦迪|夜店舞曲"),
    ("country roads|country hits|southern nights", "乡村音乐|乡村公路|美国乡村"),
    ("hip hop|rap bangers|hip hop classics", "说唱|嘻哈经典|中文说唱"),
    ("jazz night|smooth jazz|jazz lounge", "爵士之夜|慵懒爵士|爵士咖啡"),
    ("classical focus|piano classics|classical calm", "古典音乐|钢琴曲|古典专注"),
    ("kpop hits|kpop dance|kpop favorites", "韩流|韩国女团|kpop 打歌"),
    ("cpop ballads|mandopop|chinese pop", "华语流行|华语金曲|国语情歌"),
    ("road trip|road trip songs|highway", "自驾游|公路旅行|在路上"),
    ("rainy day|rainy mood|rain sounds", "下雨天|雨天听歌|阴雨绵绵"),
    ("sleep|deep sleep|bedtime", "睡前音乐|助眠|晚安"),
    ("throwback 2000s|2000s hits|early 2000s", "千禧回忆|2000年代金曲|青春回忆"),
    ("80s pop|80s hits|synthwave", "80年代流行|复古合成器|怀旧金曲"),
    ("indie folk|acoustic indie|folk chill", "民谣|独立民谣|吉他弹唱"),
    ("edm festival|edm bangers|electronic", "电音节|电子音乐|电音狂欢"),
    ("worship|praise and worship|gospel", "赞美诗|敬拜|福音"),
    ("christmas|holiday songs|xmas", "圣诞歌单|节日快乐|圣诞夜"),
    ("reggae vibes|island vibes|reggae", "雷鬼|海岛风情|牙买加"),
    ("latin hits|reggaeton|latin party", "拉丁热舞|雷鬼顿|拉丁派对"),
    ("metal|heavy metal|metalcore", "重金属|金属乐|硬核"),
    ("anime songs|anime openings|j-pop", "动漫歌曲|日系|二次元"),
    ("blues|delta blues|blues rock", "布鲁斯|蓝调|蓝调摇滚"),
    ("love songs|romantic|date night", "甜蜜情歌|恋爱|约会"),
    ("cooking|dinner party|kitchen dance", "做饭听的歌|晚餐派对|厨房"),
    ("focus|deep focus|coding", "专注工作|写代码|效率"),
    ("punk|pop punk|emo punk", "朋克|流行朋克|青春朋克"),
    ("r&b|slow jams|rnb vibes", "节奏布鲁斯|慢摇|r&b 之夜"),
    ("soundtracks|movie scores|epic music", "电影原声|影视金曲|史诗音乐"),
    ("kids songs|family road trip|disney", "儿歌|亲子时光|迪士尼"),
    ("yoga|meditation|calm", "瑜伽|冥想|平静"),
    ("summer 2019|summer hits 2019|2019 bops", "2019夏天|2019热歌|那年夏天"),
    ("guitar solos|guitar heroes|shred", "吉他独奏|吉他英雄|solo"),
    ("oldies|50s and 60s|golden oldies", "老歌|经典老歌|黄金年代"),
    ("ambient|space ambient|drone", "氛围音乐|太空|白噪音"),
]

DECORATIONS_EN = ["{}", "{}", "{}", "my {}", "{} playlist", "{} mix", "best {}", "{} 2024", "{} ✨", "{} 🔥"]
DECORATIONS_ZH = ["{}", "{}", "{}", "我的{}", "{}合集", "{}精选", "{} 🎧", "{}！", "超好听的{}"]

SONG_WORDS = ["love", "night", "fire", "dream", "heart", "river", "summer", "moon", "road", "light", "rain",
              "city", "gold", "wild", "blue", "home", "star", "ocean", "echo", "shadow", "neon", "sky",
              "dance", "storm", "ghost", "sweet", "paper", "glass", "midnight", "sunrise"]
SONG_WORDS_ZH = ["爱", "夜", "梦", "海", "风", "雨", "光", "心", "星", "城", "路", "花", "月", "歌", "年"]
SINGER_FIRST = ["Lily", "Max", "Nova", "Leo", "Mia", "Kai", "Zoe", "Ray", "Ivy", "Sam", "Luna", "Jay",
                "Ada", "Finn", "Cleo", "Owen"]
SINGER_LAST = ["Stone", "River", "Vale", "Moon", "Hart", "Reed", "Fox", "Lane", "Cross", "Wolfe", "Park", "Chen"]
SINGER_ZH = ["周", "林", "陈", "王", "张", "李", "赵", "刘", "吴", "孙"]


@dataclass
class DemoData:
    song_ids: list[str]
    song_names: list[str]
    singers: list[str]
    vectors: np.ndarray
    song_taste: np.ndarray
    playlist_ids: list[str]
    titles: list[str]
    playlist_songs: list[list[str]]
    playlist_taste: np.ndarray


def _song_name(rng: np.random.Generator, chinese: bool) -> str:
    if chinese:
        return "".join(rng.choice(SONG_WORDS_ZH, size=rng.integers(2, 4)))
    words = rng.choice(SONG_WORDS, size=rng.integers(1, 4), replace=False)
    return " ".join(w.capitalize() for w in words)


def _singer_name(rng: np.random.Generator, chinese: bool) -> str:
    if chinese:
        return rng.choice(SINGER_ZH) + "".join(rng.choice(SONG_WORDS_ZH, size=2))
    return f"{rng.choice(SINGER_FIRST)} {rng.choice(SINGER_LAST)}"


def _title(rng: np.random.Generator, taste: int) -> str:
    english, chinese = (p.split("|") for p in TASTES[taste])
    if rng.random() < 0.5:
        return rng.choice(DECORATIONS_EN).format(rng.choice(english))
    return rng.choice(DECORATIONS_ZH).format(rng.choice(chinese))


def generate_demo(n_songs: int = 2000, n_playlists: int = 3000, n_tastes: int = 40, dim: int = 100,
                  seed: int = 42) -> DemoData:
    """Make the demo dataset; the same arguments always give the same data."""
    rng = np.random.default_rng(seed)
    n_tastes = min(n_tastes, len(TASTES))
    taste_centres = rng.normal(size=(n_tastes, dim))
    # Each taste has a related taste: playlists borrow a few of its songs, vectors sit nearer it.
    related = (np.arange(n_tastes) + 1 + rng.integers(0, n_tastes - 1, size=n_tastes)) % n_tastes
    taste_centres += 0.4 * taste_centres[related]

    song_taste = np.sort(rng.integers(0, n_tastes, size=n_songs))
    n_singers = max(n_songs // 8, n_tastes)
    singer_taste = np.concatenate([np.arange(n_tastes), rng.integers(0, n_tastes, size=n_singers - n_tastes)])
    singer_chinese = rng.random(n_singers) < 0.4
    singer_names = [_singer_name(rng, bool(c)) + ("" if i < n_singers // 2 else f" {i}")
                    for i, c in enumerate(singer_chinese)]
    singer_offsets = rng.normal(scale=0.5, size=(n_singers, dim))
    song_singer = np.array([rng.choice(np.flatnonzero(singer_taste == t)) for t in song_taste])

    vectors = (taste_centres[song_taste] + singer_offsets[song_singer]
               + rng.normal(scale=0.6, size=(n_songs, dim))).astype(np.float32)
    song_ids = [f"{100000 + i:07d}" for i in rng.permutation(n_songs)]
    song_names = [_song_name(rng, bool(singer_chinese[s])) for s in song_singer]
    singers = [singer_names[s] for s in song_singer]

    # Zipf popularity inside each taste, and a global popularity for the occasional hit.
    popularity = np.empty(n_songs)
    members = [np.flatnonzero(song_taste == t) for t in range(n_tastes)]
    for songs in members:
        popularity[songs] = 1.0 / np.arange(1, len(songs) + 1) ** 1.1
    global_pop = popularity / popularity.sum()

    taste_weight = 1.0 / np.arange(1, n_tastes + 1) ** 0.5
    playlist_taste = rng.choice(n_tastes, size=n_playlists, p=taste_weight / taste_weight.sum())
    titles, playlist_songs = [], []
    for taste in playlist_taste:
        length = int(np.clip(rng.lognormal(mean=3.0, sigma=0.4), 8, 60))
        n_related = rng.binomial(length, 0.15)
        n_global = rng.binomial(length, 0.05)
        n_own = length - n_related - n_global
        chosen = []
        for pool, count in ((members[taste], n_own), (members[related[taste]], n_related)):
            count = min(count, len(pool))
            p = popularity[pool] / popularity[pool].sum()
            chosen.extend(rng.choice(pool, size=count, replace=False, p=p).tolist())
        chosen.extend(rng.choice(n_songs, size=n_global, replace=False, p=global_pop).tolist())
        order = list(dict.fromkeys(chosen))
        rng.shuffle(order)
        playlist_songs.append([song_ids[i] for i in order])
        titles.append(_title(rng, int(taste)))
    playlist_ids = [str(900000 + i) for i in range(n_playlists)]
    return DemoData(song_ids, song_names, singers, vectors, song_taste, playlist_ids, titles,
                    playlist_songs, playlist_taste)
