"""The interactive prompt (the original's REPL): type a title, get a numbered playlist.

Line editing and history come from readline where the platform has it (history is kept in
``logs/generate_history``). Commands start with ``:`` so that any title, even one that looks like a
word such as "help", is still a title. ``exit``/``quit``, Ctrl-D and Ctrl-C leave cleanly.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from genrec.artifacts import write_text
from genrec.errors import GenrecError
from genrec.serve.exports import export, format_of
from genrec.serve.generator import MAX_SONGS, GenerateOptions, PlaylistGenerator, check_options, format_playlist
from genrec.serve.seeds import split_seeds
from genrec.text import clean_title

HELP = """Type a playlist title or a mood, e.g. "late night drive" or "夏日海边", and press Enter.
输入歌单标题或心情（如「夏日海边」），按回车生成歌单。
Commands / 命令:
  :n 30          songs per playlist / 歌曲数量
  :sample        sample songs (varied) / 随机采样
  :beam          beam search (most likely songs) / 束搜索
  :temp 0.8      sampling temperature / 采样温度
  :top_p 0.9     nucleus sampling threshold / 核采样阈值
  :seed 7        seed for reproducible playlists / 随机种子
  :system NAME   model, hybrid, retrieved or knn (empty: the default) / 推荐系统
  :artist-cap 2  at most 2 songs per artist (0: no cap) / 每位歌手最多几首
  :exclude ID    never recommend these song ids (no id: clear) / 排除歌曲
  TITLE | SONG; SONG   continue these songs (song ids or "song - artist"), never repeating them / 续写歌单
  :json          toggle JSON output / 切换 JSON 输出
  :save FILE     save the last playlist (.jspf, .m3u8, .csv or .json) / 保存上一个歌单
  :settings      show the current settings / 查看当前设置
  :help          this help / 帮助
  exit, quit, Ctrl-D   leave / 退出"""

PROMPT = "title / 歌单标题> "
EXIT_WORDS = {"exit", "quit", ":q", ":quit", ":exit", "退出"}

# command -> (field, parser, check, message when the check fails)
SETTERS: dict[str, tuple[str, Callable, Callable, str]] = {
    ":n": ("num_songs", int, lambda v: 1 <= v <= MAX_SONGS, f"a whole number from 1 to {MAX_SONGS}"),
    ":temp": ("temperature", float, lambda v: 0 < v <= 10, "a number above 0 and at most 10 (e.g. 0.8)"),
    ":top_p": ("top_p", float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ":seed": ("seed", int, lambda v: 0 <= v < 2 ** 63, "a whole number from 0 to 2^63 - 1"),
    ":artist-cap": ("max_per_artist", int, lambda v: 0 <= v <= MAX_SONGS, "a whole number >= 0 (0: no cap)"),
}


def enable_history(history_file: Path) -> None:
    """Arrow-key editing and history across sessions, when readline is available."""
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input() still works.
        return
    import atexit

    history_file.parent.mkdir(parents=True, exist_ok=True)
    if history_file.exists():
        readline.read_history_file(history_file)
    readline.set_history_length(1000)
    atexit.register(readline.write_history_file, history_file)


def run_command(line: str, options: GenerateOptions, state: dict,
                generator: PlaylistGenerator) -> tuple[GenerateOptions, str]:
    """Apply a ``:command``; return the new options and what to tell the user."""
    name, _, arg = line.partition(" ")
    name, arg = name.lower(), arg.strip()
    if name == ":help":
        return options, HELP
    if name == ":settings":
        return options, describe(options, state, generator)
    if name == ":sample":
        return replace(options, sample=True), "sampling on / 已切换为随机采样"
    if name == ":beam":
        return replace(options, sample=False), "beam search on / 已切换为束搜索"
    if name in (":system", ":exclude"):
        field = "system" if name == ":system" else "exclude"
        value = arg if field == "system" else tuple(arg.split())
        try:
            changed = check_options(replace(options, **{field: value}), generator.systems)
        except GenrecError as err:
            return options, f"{err} / 参数无效"
        if field == "exclude":
            unknown = [song for song in changed.exclude if song not in generator.names]
            if unknown:
                return options, f"{unknown[0]!r} is not a song id of this catalogue / 未知歌曲"
        return changed, f"{field} = {value or '(default)'}"
    if name == ":save":
        return options, save_last(arg, state)
    if name == ":json":
        state["json"] = not state.get("json", False)
        return options, f"JSON output {'on' if state['json'] else 'off'}"
    if name in SETTERS:
        field, parse, check, expected = SETTERS[name]
        try:
            value = parse(arg)
        except ValueError:
            value = None
        if value is None or not check(value):
            return options, f"{name} needs {expected} (got {arg!r}) / 参数无效"
        return replace(options, **{field: value}), f"{field} = {value}"
    return options, f"unknown command {name}; type :help / 未知命令，输入 :help 查看帮助"


def save_last(path: str, state: dict) -> str:
    """Write the last playlist to ``path`` in the format its suffix names (atomically)."""
    if not path:
        return ":save needs a file name, e.g. :save drive.m3u8 (.jspf, .m3u8, .csv, .json) / 需要文件名"
    if state.get("last") is None:
        return "no playlist yet: type a title first / 还没有歌单"
    try:
        write_text(path, export(state["last"], format_of(path)))
    except GenrecError as err:
        return f"{err} / 保存失败"
    except OSError as err:
        return f"cannot write {path}: {err.strerror} / 保存失败"
    return f"saved {len(state['last'].songs)} songs to {path} / 已保存"


def describe(options: GenerateOptions, state: dict, generator: PlaylistGenerator) -> str:
    mode = f"sampling (temperature {options.temperature}, top_p {options.top_p})" if options.sample \
        else f"beam search ({max(options.num_beams, options.num_songs)} beams)"
    system = options.system or f"{generator.default_system} (the default)"
    cap = f", at most {options.max_per_artist} per artist" if options.max_per_artist else ""
    excluded = f", {len(options.exclude)} excluded" if options.exclude else ""
    return (f"{options.num_songs} songs, {mode}, seed {options.seed}, system {system}{cap}{excluded}, "
            f"JSON {'on' if state.get('json') else 'off'}")


def repl(generator: PlaylistGenerator, history_file: Path, read: Callable[[str], str] = input,
         write: Callable[[str], None] = print) -> None:
    enable_history(history_file)
    state: dict = {"json": False}
    write("generate_playlist: type a title, :help for commands, exit to leave. / 输入标题生成歌单，:help 查看命令，exit 退出。")
    while True:
        try:
            line = read(PROMPT)
        except (EOFError, KeyboardInterrupt):
            write("\nbye / 再见")
            return
        text = clean_title(line)
        if not text:
            continue
        if text.lower() in EXIT_WORDS:
            write("bye / 再见")
            return
        if text.startswith(":"):
            generator.options, message = run_command(text, generator.options, state, generator)
            write(message)
            continue
        title, bar, songs = text.partition("|")
        seeds = split_seeds(songs) if bar else []
        try:
            playlist = generator.generate(title.strip(), **({"seeds": seeds} if seeds else {}))
        except KeyboardInterrupt:
            write("(cancelled / 已取消)")
            continue
        except GenrecError as err:
            write(f"{err}")
            continue
        state["last"] = playlist
        write(json.dumps(playlist.to_dict(), ensure_ascii=False) if state["json"] else format_playlist(playlist))
