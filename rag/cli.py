"""The `rag` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from . import offline
from .errors import CommandMissing, StoreError
from .generators import names
from .safety import clean_line, clean_text, json_safe, mask_credentials, show

offline.apply()


def _progress_bar(enabled: bool):
    """A tqdm bar on a terminal (stderr), silent otherwise."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bars: dict = {}

    def update(stage: str, done: int, total: int):
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="doc" if stage == "embed" else "step",
                                     file=sys.stderr, leave=False)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _bot(args):
    from .api import RAG

    overrides = {}
    if getattr(args, "docs", None):
        overrides["docs_dir"] = Path(args.docs)
    if getattr(args, "store", None):
        overrides["store_dir"] = Path(args.store)
    if getattr(args, "top_k", None):
        overrides["top_k"] = args.top_k
    return RAG(**overrides)


def _json(value, ensure_ascii: bool = False) -> str:
    """One JSON line that is safe on a terminal (no raw C1 controls or bidi overrides)."""
    return json_safe(json.dumps(value, ensure_ascii=ensure_ascii))


def _fix_text(text: str) -> str:
    """Text from argv or stdin with undecodable bytes (lone surrogates) as U+FFFD."""
    if not re.search("[\ud800-\udfff]", text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return re.sub("[\ud800-\udfff]", "\ufffd", text)


def _stdin_questions():
    """(question, note) per non-blank stdin line, read as it comes. Bytes that are not valid in the
    input encoding become U+FFFD, with a note, rather than ending the batch."""
    buffer = getattr(sys.stdin, "buffer", None)
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    for number, raw in enumerate(buffer if buffer is not None else sys.stdin, start=1):
        note = None
        if isinstance(raw, bytes):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                text = raw.decode(encoding, errors="replace")
                note = f"line {number} has bytes that are not {encoding} text; they are read as \ufffd"
        else:
            text = _fix_text(raw)
        if text.strip():
            yield text, note


def cmd_index(args) -> int:
    bot = _bot(args)
    report = bot.index(rebuild=args.rebuild, progress=_progress_bar(not args.json))
    if args.json:
        print(_json(report.to_dict(), ensure_ascii=True))
    else:
        print(
            f"{report.added} added, {report.updated} updated, {report.removed} removed, "
            f"{report.unchanged} unchanged; {report.embedded} chunks embedded, {report.chunks} in the "
            f"store ({report.seconds:.1f} s)"
        )
        _print_notes(report)
    if report.moved_aside and not args.json:
        print(f"note: the index could not be opened, so it was moved to {clean_line(report.moved_aside)} and "
              "built again; delete that folder once you no longer need it", file=sys.stderr)
    if args.watch:
        _watch(bot, args.json)
    return 0


def _print_notes(report) -> None:
    """What an index run left out, and the documents that address the assistant, on stderr."""
    for s in report.skipped:
        print(f"skipped {clean_line(s.file)}: {clean_line(mask_credentials(s.reason))}", file=sys.stderr)
    for doc_id, n in report.instructions.items():
        print(f"note: {clean_line(doc_id)} has {n} sentence{'s' if n > 1 else ''} addressed to the assistant "
              "(such as 'ignore previous instructions'); never shown to a model nor used as evidence",
              file=sys.stderr)


def _watch(bot, as_json: bool) -> None:
    """`rag index --watch`: index again whenever the folder changes, until Ctrl+C."""
    from .watch import FolderWatcher, describe

    def on_change(changes) -> bool:
        try:
            r = bot.index()
        except StoreError as exc:  # a Chroma server restarting may come back: keep watching
            print(f"error: {show(exc)}", file=sys.stderr, flush=True)
            return True
        if as_json:
            print(_json({"changes": [{"path": c.path, "change": c.kind} for c in changes], **r.to_dict()},
                        ensure_ascii=True), flush=True)
            return True
        print(f"{clean_line(describe(changes))}: {r.added} added, {r.updated} updated, {r.removed} removed "
              f"({r.seconds:.1f} s)", flush=True)
        _print_notes(r)
        return True

    s = bot.settings
    print(f"watching {clean_line(str(s.docs_dir.resolve()))} for changes (Ctrl+C to stop)", file=sys.stderr,
          flush=True)
    try:
        FolderWatcher(s.docs_dir, on_change, ignore=[s.store_dir]).run()
    except KeyboardInterrupt:
        # Ctrl+C is how watching ends, also in the middle of a run (the index stays consistent).
        print("stopped watching; the next `rag index` completes any run cut short", file=sys.stderr, flush=True)


def _print_answer(answer, as_json: bool):
    if as_json:
        print(_json(answer.to_dict()), flush=True)
        return
    if answer.fallback_reason:
        print(f"note: {clean_line(mask_credentials(answer.fallback_reason))}", file=sys.stderr)
    # Text from documents and models may carry terminal escape codes: only our own layout is printed raw.
    print(clean_text(answer.answer))
    from .text import markers_in

    cited = set(markers_in(answer.answer))
    for s in answer.sources:
        if s.marker in cited:
            place = f"{clean_line(s.location)}, " if s.location else ""  # "p. 7, ", "sheet Sales, "
            print(f"  [{s.marker}] {clean_line(s.title)} ({clean_line(s.file_name)}, {place}chars {s.start}-{s.end})")
    print(flush=True)


def cmd_ask(args) -> int:
    from .api import QuestionError

    bot = _bot(args)
    doc_ids = None
    if args.doc_ids:
        try:  # once for the batch: a wrong --doc would fail every question the same way
            bot.ensure_indexed()  # as a first question does on an empty store: the ids are checked after
            doc_ids = bot.select_documents([_fix_text(d) for d in args.doc_ids])
        except QuestionError as exc:
            _question_failed(args, args.question or "", str(exc))
            return 2
    if args.question is not None:
        questions = iter([(_fix_text(args.question), None)])
    else:
        questions = _stdin_questions()
    status = 0
    for q, note in questions:
        if note:
            print(f"note: {note}", file=sys.stderr)
        try:
            if args.json or not sys.stdout.isatty():
                _print_answer(bot.ask(q, generator=args.generator, top_k=args.top_k, doc_ids=doc_ids), args.json)
                continue
            # On a terminal the text streams in; the checked answer follows if checking changed it.
            stream = bot.ask_stream(q, generator=args.generator, top_k=args.top_k, doc_ids=doc_ids)
            streamed = ""
            for delta in stream:
                streamed += delta
                print(clean_text(delta), end="", flush=True)
            print("\n")
            answer = stream.answer
            if answer.answer.strip() != streamed.strip():
                print("With citations checked:")
            _print_answer(answer, False)
        except QuestionError as exc:
            status = 2
            _question_failed(args, q, str(exc))
        except StoreError:
            raise  # the store is unusable: every later question would fail the same way
        except Exception as exc:  # noqa: BLE001 - one bad question costs that question, not the batch
            status = max(status, 1)
            _question_failed(args, q, f"this question could not be answered ({type(exc).__name__}: {exc})")
    return status


def _question_failed(args, question: str, message: str) -> None:
    if args.json:
        print(_json({"question": question.strip()[:200], "error": mask_credentials(message)}), flush=True)
    else:
        print(f"error: {clean_line(mask_credentials(message))}", file=sys.stderr, flush=True)


def cmd_status(args) -> int:
    info = _bot(args).status()
    # status() masks credentials already; masked again here so no path can print one.
    if args.json:
        print(_json({k: show(v) if isinstance(v, str) else v for k, v in info.items()}, ensure_ascii=True))
    else:
        for k, v in info.items():
            print(f"{k:16} {clean_line(show(v))}")
    return 0


def cmd_feedback(args) -> int:
    """`rag feedback export`: every kept turn with feedback, for evaluation (JSONL with --json or --out)."""
    records = _bot(args).feedback_records()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    for r in records if not args.out else ():
        if args.json:
            print(_json(r))
            continue
        comment = f" — {clean_line(r['comment'])}" if r["comment"] else ""
        print(f"{r['rating']:4} {clean_line(r['question'])}{comment}\n     {clean_line(r['answer'])[:200]}")
    up = sum(r["rating"] == "up" for r in records)
    print(f"{len(records)} answer{'s' if len(records) != 1 else ''} with feedback ({up} up, {len(records) - up} down)"
          + (f", written to {clean_line(args.out)}" if args.out else ""), file=sys.stderr)
    return 0


def cmd_conversations(args) -> int:
    """`rag conversations`: the kept conversations of every owner (browsers by a digest of their id)."""
    rows = _bot(args).history.everyone()
    for r in rows:
        if args.json:
            print(_json(r))
        else:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["updated"]))
            print(f"{r['id']}  {when}  {r['turns']:3} turns  {r['rated']:3} rated  {clean_line(r['owner'])[:24]:24}  "
                  f"{clean_line(r['title'])}")
    if not args.json:
        print(f"{len(rows)} conversation{'s' if len(rows) != 1 else ''}", file=sys.stderr)
    return 0


# Commands implemented outside the engine (the UI's `serve`) register here in pyproject.toml, so
# rag/ never imports the UI.
COMMANDS_GROUP = "rag_chat.commands"


def _installed_command(name: str) -> Callable[[argparse.Namespace], Optional[int]]:
    from importlib.metadata import entry_points

    found = entry_points(group=COMMANDS_GROUP, name=name)
    if not found:
        raise CommandMissing(
            f"the `{name}` command is not installed (no '{name}' entry point in group {COMMANDS_GROUP}); "
            f"reinstall the project: pip install -e ."
        )
    entry = next(iter(found))
    try:
        return entry.load()
    except ImportError as exc:
        raise CommandMissing(f"the `{name}` command ({entry.value}) cannot be imported: {exc}") from exc


def cmd_serve(args) -> int:
    return _installed_command("serve")(args) or 0


def _tqdm_bar(enabled: bool):
    """bar(iterable, desc, total): a tqdm bar on a terminal (stderr), the bare iterable otherwise."""
    from tqdm import tqdm

    return lambda it, desc, total: tqdm(it, desc=desc, total=total, file=sys.stderr, leave=False,
                                        disable=None if enabled else True)


def cmd_eval(args) -> int:
    # Imported here: the runtime package never loads the eval package at import time.
    from rageval import beir, qa, report

    progress = not args.json
    if args.eval_command == "beir":
        result = beir.eval_beir(Path(args.data), split=args.split,
                                store_dir=Path(args.store) if args.store else None,
                                bar=_tqdm_bar(progress), index_progress=_progress_bar(progress))
    else:
        result = qa.eval_qa(Path(args.qa), docs_dir=args.docs, store_dir=args.store,
                            generator=args.generator, bar=_tqdm_bar(progress),
                            index_progress=_progress_bar(progress), limit=args.limit, peer=args.peer,
                            out=Path(args.out) if args.out else None)
    print(_json(result) if args.json else clean_text(report.format_result(result)))
    return 0


def cmd_bench(args) -> int:
    from rageval import bench

    if args.scale:
        return _bench_scale(args)
    plan = bench.Plan.quick() if args.quick else bench.Plan()
    if args.sizes:
        plan.sizes = tuple(sorted(int(x) for x in args.sizes.split(",")))
    result = bench.run(Path(args.out), plan, scifact_dir=Path(args.scifact) if args.scifact else bench.SCIFACT,
                       show_progress=not args.json)
    print(_json(result, ensure_ascii=True) if args.json else clean_text(bench.format_result(result)))
    return 0


def _bench_scale(args) -> int:
    from rageval import bench, scale

    sizes = sorted({int(x.replace("_", "")) for x in args.scale.split(",")})
    result = scale.run_scale(Path(args.out), sizes, queries=args.queries, server=not args.no_server,
                             work=Path(args.work) if args.work else None, keep=args.keep,
                             scifact_dir=Path(args.scifact) if args.scifact else bench.SCIFACT)
    print(_json(result, ensure_ascii=True) if args.json else clean_text(scale.format_scale(result)))
    return 0


def _add_ask(sub, common: Callable) -> None:
    sp = sub.add_parser("ask", help="ask a question (or one per line on stdin)")
    sp.add_argument("question", nargs="?")
    common(sp)
    sp.add_argument("--generator", choices=names())
    sp.add_argument("--top-k", type=int, dest="top_k")
    sp.add_argument("--doc", action="append", dest="doc_ids", metavar="ID_OR_GLOB",
                    help="answer from this document only: its path inside the docs folder (the id the UI "
                         "lists), or a glob such as 'reports/*.pdf'; repeat for several")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_ask)


def _add_conversations(sub, common: Callable) -> None:
    sp = sub.add_parser("feedback", help="the thumbs up/down given on answers in the browser UI")
    fb = sp.add_subparsers(dest="feedback_command", required=True)
    e = fb.add_parser("export", help="every answer with feedback: question, answer, sources, rating, comment")
    common(e)
    e.add_argument("--json", action="store_true", help="one JSON object per line (JSONL), for evaluation")
    e.add_argument("--out", help="write JSONL to this file instead of the terminal")
    e.set_defaults(func=cmd_feedback)

    sp = sub.add_parser("conversations", help="the conversations kept by the browser UI, of every user and browser")
    common(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_conversations)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rag", description="Ask questions about your documents, with cited answers.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--docs", help="documents folder (RAG_DOCS_DIR, default seeds/)")
        sp.add_argument("--store", help="index folder (RAG_STORE_DIR, default index_store/)")

    sp = sub.add_parser("index", help="index the documents folder (incremental)")
    common(sp)
    sp.add_argument("--rebuild", action="store_true", help="drop the index and build it again")
    sp.add_argument("--watch", action="store_true",
                    help="then keep watching the folder and index what changes there, until Ctrl+C")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_index)

    _add_ask(sub, common)

    sp = sub.add_parser("status", help="what is indexed and which models are in use")
    common(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("serve", help="start the chat UI in the browser")
    common(sp)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=7860)
    sp.set_defaults(func=cmd_serve)

    _add_conversations(sub, common)

    _add_eval(sub, common)
    _add_bench(sub)
    return p


def _add_eval(sub, common) -> None:
    sp = sub.add_parser("eval", help="measure retrieval (BEIR data set) or answer quality (question file)")
    ev = sp.add_subparsers(dest="eval_command", required=True)
    e = ev.add_parser("beir", help="nDCG@10, recall, MRR and latency on a BEIR-format data set")
    e.add_argument("--data", required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    e.add_argument("--split", default="test", help="qrels split (default test)")
    e.add_argument("--store", help="eval index folder (default <RAG_STORE_DIR>/eval-<data set>)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)
    e = ev.add_parser("qa", help="retrieval hits, answer matches, citations and refusals on a question file")
    e.add_argument("--qa", required=True, help="JSONL question file (seedqa format)")
    common(e)
    e.add_argument("--generator", choices=names())
    e.add_argument("--limit", type=int, help="only the first N questions")
    e.add_argument("--out", help="also write the full result to this JSON file")
    e.add_argument("--peer", choices=["llamaindex"],
                   help="also run the stock LlamaIndex pipeline (same embedding model and GGUF), scored alike")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)


def _add_bench(sub) -> None:
    sp = sub.add_parser("bench", help="speed: embedding vs indexing, re-index, query latency by corpus size")
    sp.add_argument("--out", default="bench_out", help="folder for bench.json and the plots (default bench_out/)")
    sp.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    sp.add_argument("--sizes", help="comma-separated store sizes in chunks (default 1000,...,100000)")
    sp.add_argument("--scifact", help="BEIR SciFact folder whose abstracts feed the synthetic corpus")
    sp.add_argument("--scale", help="instead: the large-store bench at these sizes in chunks (e.g. "
                    "10000,100000,1000000), synthetic 20-40-chunk documents with generated vectors")
    sp.add_argument("--queries", type=int, default=200, help="--scale: timed questions per size (default 200)")
    sp.add_argument("--no-server", action="store_true", help="--scale: embedded store only, no `chroma run`")
    sp.add_argument("--work", help="--scale: folder for the store being grown (default OUT/scale_work)")
    sp.add_argument("--keep", action="store_true",
                    help="--scale: keep the store, and grow a kept one instead of starting over")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_bench)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StoreError, CommandMissing, FileNotFoundError, ValueError) as exc:
        print(f"error: {show(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the index stays usable and the next `rag index` completes it", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
