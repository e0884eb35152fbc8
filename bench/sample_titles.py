"""Titles the serving benches send when no titles file is given: English moods, Chinese (both scripts), emoji, and
one nonsense title, so that every path of the generator (the fallback for a title it cannot read included) is
timed."""

SAMPLE_TITLES = [
    "late night drive", "sad songs", "workout motivation", "chill vibes", "summer road trip", "rainy day",
    "songs to study to", "party hits", "morning coffee", "heartbreak", "throwback 2000s", "sleep",
    "夏日海边", "深夜emo", "健身燃脂", "周日早晨", "经典老歌", "失恋", "開車必聽", "粤语金曲",
    "🔥🔥🔥", "😭", "beach 🌊", "love ❤️", "gym 💪", "good vibes only ✨", "xqzv blorp 93",
    "country roads", "indie folk", "k-pop",
]
