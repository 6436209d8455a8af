"""Kept conversations: each question with its checked answer (sources and all) and the feedback
given on it, in SQLite beside the index (`<RAG_STORE_DIR>/conversations.sqlite3`), so a
conversation can be reopened after a page reload or a server restart, exported, and its feedback
gathered for evaluation (`rag feedback export`).

Every conversation has an owner: a logged-in user, a browser, or whatever name a script passes.
Every read, change and delete names the owner, and a conversation of another owner is answered
exactly as one that does not exist, so an owner can neither read nor learn of another's."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator, Optional, Union

from .errors import ConversationError, StoreError
from .models import Answer, Source

FILE_NAME = "conversations.sqlite3"
RATINGS = ("up", "down")
TITLE_CHARS = 80  # of the first question, as the conversation's title
MAX_COMMENT_CHARS = 2000
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,           -- JSON: Answer.to_dict() with the sources' support spans
    asked_at REAL NOT NULL,
    rating TEXT CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    rated_at REAL,
    PRIMARY KEY (conversation_id, idx)
);
"""


@dataclass
class ConversationTurn:
    index: int  # from 0, in the order asked
    question: str
    answer: Answer
    asked_at: float
    rating: Optional[str] = None  # "up", "down" or None
    comment: str = ""

    def to_dict(self) -> dict:
        """The answer as Answer.to_dict(), with the feedback given on it (None when none was)."""
        feedback = {"rating": self.rating, "comment": self.comment} if self.rating else None
        return {**self.answer.to_dict(), "feedback": feedback}


@dataclass
class ConversationSummary:
    id: str
    title: str
    created: float
    updated: float
    turns: int


@dataclass
class Conversation:
    id: str
    title: str
    created: float
    updated: float
    turns: list[ConversationTurn] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "created": self.created, "updated": self.updated,
                "turns": [t.to_dict() for t in self.turns]}


# ---- answers as stored --------------------------------------------------------------------------
def stored_answer(answer: Answer) -> dict:
    """Answer.to_dict(), its sources with every field (similarity, support spans), so a reopened
    answer shows its passages as they were first shown."""
    return {**answer.to_dict(), "sources": [asdict(s) for s in answer.sources]}


_SOURCE_FIELDS = {f.name for f in fields(Source)}


def answer_from_dict(d: dict) -> Answer:
    """The Answer of stored_answer(...) or Answer.to_dict()."""
    sources = []
    for s in d.get("sources") or []:
        kept = {k: v for k, v in s.items() if k in _SOURCE_FIELDS}
        kept["spans"] = [tuple(span) for span in kept.get("spans") or []]
        sources.append(Source(**kept))
    return Answer(question=d["question"], answer=d["answer"], answered=bool(d["answered"]),
                  generator=d.get("generator", ""), sources=sources, seconds=float(d.get("seconds") or 0.0),
                  fallback_reason=d.get("fallback_reason"))


def title_of(question: str) -> str:
    text = " ".join(str(question).split())
    return text if len(text) <= TITLE_CHARS else text[:TITLE_CHARS - 1].rstrip() + "…"


def rating_of(rating: Union[str, int, bool, None]) -> str:
    """"up"/"down" from "up", "down", +1/-1 or True/False."""
    if rating in (True, 1, "up", "+1", "👍"):
        return "up"
    if rating in (False, -1, "down", "-1", "👎"):
        return "down"
    raise ConversationError(f"rating must be 'up' or 'down', not {rating!r}")


def owner_label(owner: str) -> str:
    """The owner as an export may show it: a browser's id is the key to its conversations, so only
    a digest of it is shown; a user name as it is."""
    if owner.startswith("browser:"):
        return "browser:" + hashlib.sha256(owner.encode("utf-8")).hexdigest()[:12]
    return owner


def _check_owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise ConversationError(f"owner must be a non-empty name, not {owner!r}")
    return owner


def _missing(conversation_id: object) -> ConversationError:
    # The same words for another owner's conversation as for none at all.
    return ConversationError(f"no conversation {conversation_id!r}")


# ---- the store ---------------------------------------------------------------------------------
class History:
    """The conversations file. One connection, shared by the server's threads under a lock; other
    processes (`rag feedback export` while `rag serve` runs) read it too (WAL)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db: Optional[sqlite3.Connection] = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                if db.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:
                    db.executescript(_SCHEMA + f"PRAGMA user_version={_SCHEMA_VERSION};")
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"the conversations file {self.path} cannot be opened ({exc}); set "
                                 "RAG_KEEP_CONVERSATIONS=false to keep none") from None
            self._db = db
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A transaction that holds the write lock from its first read (BEGIN IMMEDIATE), so two
        processes adding a turn cannot both take the same index."""
        with self._lock, self._failing():
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _rows(self, sql: str, *args) -> list[tuple]:
        with self._lock, self._failing():
            return self._connect().execute(sql, args).fetchall()

    @contextmanager
    def _failing(self) -> Iterator[None]:
        """A database error (disk full, locked too long) as a StoreError that says which file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"the conversations file {self.path} cannot be used now ({exc})") from None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ---- conversations of one owner ----------------------------------------------------------
    def owned(self, owner: str) -> list[ConversationSummary]:
        """The owner's conversations, the latest changed first."""
        rows = self._rows(
            "SELECT c.id, c.title, c.created, c.updated, COUNT(t.idx) FROM conversations c "
            "LEFT JOIN turns t ON t.conversation_id = c.id WHERE c.owner = ? GROUP BY c.id "
            "ORDER BY c.updated DESC, c.created DESC", _check_owner(owner))
        return [ConversationSummary(*row) for row in rows]

    def get(self, conversation_id: str, owner: str) -> Conversation:
        head = self._rows("SELECT id, title, created, updated FROM conversations WHERE id = ? AND owner = ?",
                          conversation_id, _check_owner(owner))
        if not head:
            raise _missing(conversation_id)
        rows = self._rows("SELECT idx, question, answer, asked_at, rating, comment FROM turns "
                          "WHERE conversation_id = ? ORDER BY idx", conversation_id)
        turns = [ConversationTurn(idx, q, answer_from_dict(json.loads(a)), at, rating, comment or "")
                 for idx, q, a, at, rating, comment in rows]
        cid, title, created, updated = head[0]
        return Conversation(cid, title, created, updated, turns)

    def delete(self, conversation_id: str, owner: str) -> None:
        with self._write() as db:
            gone = db.execute("DELETE FROM conversations WHERE id = ? AND owner = ?",
                              (conversation_id, _check_owner(owner))).rowcount
        if not gone:
            raise _missing(conversation_id)

    def record(self, owner: str, answer: Answer, conversation_id: Optional[str] = None,
               question: Optional[str] = None) -> tuple[str, int]:
        """Add a turn to the owner's conversation (a new one when conversation_id is None, titled by
        the question): (conversation id, index of the turn)."""
        _check_owner(owner)
        asked = " ".join(str(question if question is not None else answer.question).split())
        now = time.time()
        with self._write() as db:
            if conversation_id is None:
                conversation_id = secrets.token_urlsafe(12)
                db.execute("INSERT INTO conversations (id, owner, title, created, updated) VALUES (?, ?, ?, ?, ?)",
                           (conversation_id, owner, title_of(asked) or "(untitled)", now, now))
            elif not db.execute("UPDATE conversations SET updated = ? WHERE id = ? AND owner = ?",
                                (now, conversation_id, owner)).rowcount:
                raise _missing(conversation_id)
            index = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM turns WHERE conversation_id = ?",
                               (conversation_id,)).fetchone()[0]
            db.execute("INSERT INTO turns (conversation_id, idx, question, answer, asked_at) VALUES (?, ?, ?, ?, ?)",
                       (conversation_id, index, asked, json.dumps(stored_answer(answer), ensure_ascii=False), now))
        return conversation_id, index

    def rate(self, conversation_id: str, turn_index: int, rating, comment: Optional[str], owner: str) -> int:
        """Feedback on a turn (turn_index -1: the latest), replacing any given before; returns the
        turn's index."""
        rating = rating_of(rating)
        if isinstance(turn_index, bool) or not isinstance(turn_index, int):
            raise ConversationError(f"turn_index must be a whole number, not {turn_index!r}")
        text = " ".join(str(comment or "").split())[:MAX_COMMENT_CHARS]
        with self._write() as db:
            if not db.execute("SELECT 1 FROM conversations WHERE id = ? AND owner = ?",
                              (conversation_id, _check_owner(owner))).fetchone():
                raise _missing(conversation_id)
            indexes = [r[0] for r in db.execute("SELECT idx FROM turns WHERE conversation_id = ? ORDER BY idx",
                                                (conversation_id,))]
            if not -len(indexes) <= turn_index < len(indexes):
                raise ConversationError(f"conversation {conversation_id!r} has {len(indexes)} turns; "
                                        f"there is no turn {turn_index}")
            index = indexes[turn_index]
            db.execute("UPDATE turns SET rating = ?, comment = ?, rated_at = ? WHERE conversation_id = ? AND idx = ?",
                       (rating, text, time.time(), conversation_id, index))
        return index

    # ---- every owner: for the operator (CLI) ---------------------------------------------------
    def everyone(self) -> list[dict]:
        """Every conversation, of every owner (the owner as owner_label shows it)."""
        rows = self._rows(
            "SELECT c.id, c.owner, c.title, c.created, c.updated, COUNT(t.idx), COUNT(t.rating) FROM conversations c "
            "LEFT JOIN turns t ON t.conversation_id = c.id GROUP BY c.id ORDER BY c.updated DESC")
        return [{"id": i, "owner": owner_label(o), "title": t, "created": c, "updated": u, "turns": n, "rated": r}
                for i, o, t, c, u, n, r in rows]

    def feedback(self) -> list[dict]:
        """Every turn that has feedback, oldest first: the question, the answer, its sources, the
        rating and comment, for evaluation."""
        rows = self._rows(
            "SELECT c.id, c.owner, t.idx, t.question, t.answer, t.rating, t.comment, t.asked_at, t.rated_at "
            "FROM turns t JOIN conversations c ON c.id = t.conversation_id WHERE t.rating IS NOT NULL "
            "ORDER BY t.rated_at, c.id, t.idx")
        out = []
        for cid, owner, idx, question, answer, rating, comment, asked_at, rated_at in rows:
            a = answer_from_dict(json.loads(answer))
            out.append({"conversation": cid, "turn": idx, "owner": owner_label(owner), "question": question,
                        "answer": a.answer, "answered": a.answered, "generator": a.generator,
                        "cited": a.cited_markers(), "sources": [s.public() for s in a.sources],
                        "rating": rating, "comment": comment or "", "asked_at": asked_at, "rated_at": rated_at})
        return out


# ---- exports ------------------------------------------------------------------------------------
def _place(source: Source) -> str:
    return source.location or (f"p. {source.page}" if source.page else "")


def _one_line(text: str) -> str:
    return " ".join(str(text or "").split())


def to_markdown(conversation: Conversation) -> str:
    """Each question, the answer with its [n] markers, then the numbered references it cites
    (title, file, where in the file) and the feedback given on it."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.created))
    lines = [f"# {_one_line(conversation.title)}", "", f"_Conversation of {when}, {len(conversation.turns)} "
             f"question{'s' if len(conversation.turns) != 1 else ''}._", ""]
    for n, turn in enumerate(conversation.turns, start=1):
        a = turn.answer
        lines += [f"## {n}. {_one_line(turn.question)}", "", a.answer.strip() or "(no answer)", ""]
        if not a.answered:
            lines += ["_Not found in the documents._", ""]
        cited = a.cited_markers()
        refs = [s for s in a.sources if s.marker in cited]
        if refs:
            lines += ["References:", ""]
            for s in refs:
                where = ", ".join(p for p in (s.file_name or s.doc_id, _place(s)) if p)
                lines.append(f"- [{s.marker}] {_one_line(s.title or s.file_name)} — {_one_line(where)}")
            lines.append("")
        if turn.rating:
            note = f" — {turn.comment}" if turn.comment else ""
            lines += [f"Feedback: {'👍' if turn.rating == 'up' else '👎'} {turn.rating}{note}", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_json(conversation: Conversation) -> str:
    """{"id", "title", "created", "updated", "turns": [Answer.to_dict() + "feedback", ...]}."""
    return json.dumps(conversation.to_dict(), ensure_ascii=False, indent=2) + "\n"


EXPORTS = {"markdown": to_markdown, "md": to_markdown, "json": to_json}


def export(conversation: Conversation, fmt: str) -> str:
    if fmt not in EXPORTS:
        raise ConversationError(f"fmt must be 'markdown' or 'json', not {fmt!r}")
    return EXPORTS[fmt](conversation)


def file_name(conversation: Conversation, fmt: str) -> str:
    """conversation-<title words>.md / .json: a name safe on every system."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", conversation.title).strip("-").lower()[:48].rstrip("-")
    return f"conversation-{slug or conversation.id}.{'json' if fmt == 'json' else 'md'}"
